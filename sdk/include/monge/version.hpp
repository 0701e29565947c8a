#pragma once
/// Version constants of the monge plugin SDK.
///
/// The SDK major changes whenever a plugin built against an older SDK could misbehave in a newer
/// host (an interface changed layout or meaning). The minor changes when something is added in a
/// compatible way. The host refuses plugins whose major differs from its own.
///
/// Since 7.0 a new capability is an addition, not a new virtual function: a capability struct
/// answered through Plugin::capability() (per object), or an optional exported symbol that the
/// loader looks up (per plugin, like MONGE_PLUGIN_MIGRATION). Either is a minor bump. Adding,
/// removing or reordering a virtual function of an interface, or changing a struct the host and
/// plugins share (other than appending to a capability struct), is a major bump. docs/plugins.md
/// states the rule.
///
/// Changelog
///   1.0  first public SDK: Plugin, ForwardOperator, NoiseModel, Cost, Network, Solver, Metric,
///        Schema/Params, the plugin info record.
///   2.0  Cost::role() and ForwardOperator::monotone() (for the twist-condition check of UOTIP
///        costs) and
///        Solver::scale_learning_rates() (for divergence rollback), SolverContext::total_steps
///        (for schedules): new virtual functions and members change the interfaces' layout.
///   3.0  ForwardOperator::lift_radius() and Network::tile_alignment() (for exact tiled apply of
///        large images): new virtual functions change the interfaces' layout.
///   4.0  SolverContext::gradient_sync / sync_gradients() (for data-parallel training): solvers
///        must average gradients through it, and the context's layout changed.
///        Solver::wants_pairs() (supervised training on pairs). Metric::set_level() and
///        Metric::score_set() (metrics of whole sets, such as FID).
///   5.0  Solver::latent_channels() (stochastic maps T(y, z): the map network takes extra input
///        channels of noise z): a new virtual function changes the Solver interface's layout.
///   6.0  Solver::input_noise() (smoothed maps T(Q(y + s n)) of OTP: map files record s and apply
///        adds the noise): a new virtual function changes the Solver interface's layout.
///        SolverContext::build_map (a further module of the map's architecture, for solvers that
///        keep a frozen copy of the map, such as gan_reg's reference).
///   7.0  Plugin::capability() (versioned capabilities: the next capability needs no major bump)
///        and MONGE_PLUGIN_MIGRATION (an optional exported migration of parameters saved by an
///        older version of the plugin; map files record plugin versions): a new virtual function
///        in the base class changes every interface's layout.
///   7.1  monge::PaddedInput, a network capability: modules run on an image in the corner of a
///        larger, zero-padded input (apply rounds window sizes to reuse compiled kernels).

#define MONGE_SDK_MAJOR 7
#define MONGE_SDK_MINOR 1
#define MONGE_VERSION_STRING "0.1.0"

namespace monge {

/// Major version of the SDK this header belongs to.
inline constexpr int kSdkMajor = MONGE_SDK_MAJOR;
/// Minor version of the SDK this header belongs to.
inline constexpr int kSdkMinor = MONGE_SDK_MINOR;
/// Version of the monge toolkit these headers ship with.
inline constexpr const char* kVersion = MONGE_VERSION_STRING;

}  // namespace monge
