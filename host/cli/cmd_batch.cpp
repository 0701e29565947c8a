// `monge batch MAP INPUT... --out DIR`: folders, lists and archives restored, resumable and sharded
// (host/apply/batch.hpp).

#include <iomanip>
#include <iostream>

#include "host/apply/batch.hpp"
#include "host/apply/options.hpp"
#include "host/cli/commands.hpp"
#include "host/core/threads.hpp"
#include "host/map/map_file.hpp"

namespace monge::cli {
namespace {

constexpr const char* kBatchHelpHead = R"(Usage: monge batch MAP INPUT... --out DIR [OPTIONS]

Restores every image of the inputs with the map in MAP, one `monge apply` each (streamed, exact
tiles; every apply option below works the same), into DIR, whose tree mirrors the inputs.

INPUT: a folder (walked recursively), a list file (@FILE, or a .txt/.lst file: one path per line,
relative to the list, # comments), an archive (.tar, .tar.gz/.tgz, .tar.xz/.txz, .tar.zst/.tzst,
.tar.bz2/.tbz2/.tbz, .zip: tar of any dialect or zip, read by libarchive in one pass) or an image.
With several inputs each one's outputs go under DIR/<its name>/. Without --include, files with
the extensions libvips commonly reads are taken (png, jpg, jpeg, tif, tiff, webp, ...).

DIR/manifest.jsonl (DIR/manifest.shard-I-of-N.jsonl per shard) gets one line per file: key,
input, output, status (ok or error), error, seconds, sizes, precision, shard, host, pid, time. A re-run reads
every manifest in DIR and skips what is done (status ok and the output present); inputs that
failed are skipped too unless --retry-failed. A corrupt or unreadable input is recorded and
skipped, never fatal. Outputs are written atomically, so a killed run loses only the file in hand.

Recorded as errors before any work, the rest going on: symbolic links inside an input folder
and link members of archives (not followed); a later input with the same path as an earlier one
("duplicate of ..."; the first is restored); two inputs that --format maps to one output
(neither is restored); an output that would overwrite an input; archive members over 2 GiB or
with names over 4096 bytes; a damaged archive (its members before the damage are restored).

Options:
)";

constexpr const char* kBatchHelpTail = R"(
The precision that ran is in every manifest record and in the last line. --reduce all is for
monge apply only (several files per input).

Exit code 0 when every file of the shard is done, 1 when some failed (see the manifest).
)";

std::string batch_help() { return kBatchHelpHead + host::batch_options().help() + kBatchHelpTail; }

int run(const Options& opt, const std::vector<std::string>& args) {
  const CliOptions o = parse_options(host::batch_options(), opt, args);
  if (o.help) {
    std::cout << batch_help();
    return kExitOk;
  }
  if (o.positional.size() < 2) return usage_error("batch: give MAP and at least one INPUT (monge batch map.pt scans/ --out restored/)");
  host::BatchOptions bo;
  try {
    bo = host::batch_options(o.params, "batch", host::OptionSpelling{true});
  } catch (const monge::ParamError& e) {
    return usage_error(e.what());
  }
  monge::host::set_threads(bo.apply.threads);
  auto map = host::load_map(o.positional[0], registry(opt), {o.params.boolean("trust_code")});
  seed_map(map, o.params);
  const std::vector<std::string> inputs(o.positional.begin() + 1, o.positional.end());
  const auto r = host::run_batch(map, inputs, bo);
  if (!opt.quiet)
    std::cerr << "batch: shard " << bo.shard.index << "/" << bo.shard.count << ": " << r.ok << " restored, " << r.failed
              << " failed, " << r.already << " done before, " << r.failed_before << " failed before, in " << std::fixed
              << std::setprecision(1) << r.seconds << " s (" << r.mpix << " MPix written, "
              << host::precision_name(r.precision) << "); manifest " << r.manifest.string()
              << "\n";
  return r.failed > 0 ? kExitError : kExitOk;
}

}  // namespace

Command batch_command() {
  return {"batch",
          {{"[OPTIONS] batch MAP INPUT... --out DIR [--shard I/N ...]",
            "restore folders, list files, tar and zip archives;\nresumable (JSONL manifest), sharded across processes"}},
          &batch_help, &run, &host::batch_options};
}

}  // namespace monge::cli
