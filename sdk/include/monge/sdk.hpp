#pragma once
/// Everything a plugin of the light kinds (operator, noise, cost, metric) needs. Network and
/// solver plugins include monge/network.hpp or monge/solver.hpp as well.

#include "monge/cost.hpp"
#include "monge/export.hpp"
#include "monge/metric.hpp"
#include "monge/migration.hpp"
#include "monge/noise.hpp"
#include "monge/operator.hpp"
#include "monge/params.hpp"
#include "monge/plugin.hpp"
#include "monge/version.hpp"
