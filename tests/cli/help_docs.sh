#!/usr/bin/env bash
# docs/cli.md opens with the command list of `monge --help` (indented as a code block): both come
# from the table of subcommands (host/cli/commands.cpp), and this fails when the docs lag behind.
#   help_docs.sh MONGE DOCS_CLI_MD
set -euo pipefail
monge=$1 doc=$2
# The lines between "Usage:" and the next blank line of --help; the first code block of the docs.
help=$("$monge" --help | awk '/^Usage:$/ {on = 1; next} on && /^$/ {exit} on {print "  " $0}')
docs=$(awk 'NR > 2 && /^$/ {exit} NR > 2 {print}' "$doc")
if [ "$help" != "$docs" ]; then
  echo "help_docs: docs/cli.md's command list differs from 'monge --help' (replace it with the --help lines, indented by 2 more spaces):" >&2
  diff <(printf '%s\n' "$docs") <(printf '%s\n' "$help") >&2 || true
  exit 1
fi
echo "help_docs: docs/cli.md lists the commands of 'monge --help'"
