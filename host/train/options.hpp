#pragma once
// monge.train's options, declared once (host/core/options.hpp): the Lua binding checks the keys,
// types and ranges and fills the defaults from this declaration, `monge help --markdown train`
// prints it as the table of docs/training.md (tests/host/options_test.cpp compares them), and a
// test checks that TrainConfig's defaults agree with it.

#include "host/core/options.hpp"
#include "host/train/trainer.hpp"

namespace monge::host {

/// The options of monge.train{}: the plugin objects (operator, noise, networks, solver, cost), the
/// tensors (opaque keys: the binding reads them), the run's settings.
const OptionSet& train_options();

/// The settings of validated train options `p` into `c`: everything but the plugin objects and the
/// tensors, which the binding reads with their names and recorded parameters.
void set_train_options(const Params& p, TrainConfig& c);

}  // namespace monge::host
