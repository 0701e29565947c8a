#pragma once
// The options of `monge apply` and `monge batch` (and monge.apply{} and monge.batch{} in Lua),
// declared once: the command line, its --help, the Lua argument checking and the option tables in
// docs/cli.md all come from these declarations (host/core/options.hpp).

#include <string>

#include "host/apply/batch.hpp"
#include "host/apply/stream.hpp"
#include "host/core/options.hpp"

namespace monge::host {

/// apply's options: tiles, device, precision, output depth, limits, the realism knob, a
/// stochastic map's sampling.
const OptionSet& apply_options();
/// batch's: every apply option except what makes several files per input, and its own (the
/// output folder, filters, output format, shard, retries).
const OptionSet& batch_options();

/// The streaming options that validated apply (or batch) options ask for; the device and the
/// precision are resolved here, before any work (`who` starts their errors; the errors of these
/// and of the apply itself name options as `spell` says: Lua keys by default).
StreamOptions stream_options(const Params& p, const std::string& who, const OptionSpelling& spell = {});
/// The batch options that validated batch options ask for (the shard resolved from --shard or
/// the launcher's environment).
BatchOptions batch_options(const Params& p, const std::string& who, const OptionSpelling& spell = {});

}  // namespace monge::host
