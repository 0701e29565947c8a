#pragma once
// The option tables of monge.ot.sinkhorn, .unbalanced, .energy_distance and .sinkhorn_divergence,
// declared once (host/core/options.hpp): the binding (host/lua/ot.cpp) checks keys, types and
// ranges and fills the defaults from them, and docs/lua.md's tables are generated from them
// (tests/host/options_test.cpp compares). The defaults are those of the C++ option structs
// (host/ot/discrete_ot.hpp). The weights `a`, `b` are tensors: opaque keys the binding reads.

#include "host/core/options.hpp"
#include "host/ot/discrete_ot.hpp"

namespace monge::host::ot {

const OptionSet& sinkhorn_options();
const OptionSet& unbalanced_options();
const OptionSet& energy_distance_options();
const OptionSet& divergence_options();

/// The C++ options of validated option tables.
SinkhornOptions sinkhorn_settings(const Params& p);
UnbalancedOptions unbalanced_settings(const Params& p);
DivergenceOptions divergence_settings(const Params& p);

}  // namespace monge::host::ot
