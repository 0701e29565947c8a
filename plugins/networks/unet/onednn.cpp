#include "onednn.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <oneapi/dnnl/dnnl.hpp>

namespace unet {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Where a primitive's argument lives when the plan runs.
struct Ref {
  enum Kind { Input, Output, Value, Weight, Bias, Scratch } kind = Value;
  int64_t index = 0;  // value, weight use or layer
};

struct Step {
  // A oneDNN primitive, or a copy done here from value `from` into the DST argument (both
  // channels-last): nearest 2x upsampling.
  enum Op { Primitive, Upsample } op = Primitive;
  dnnl::primitive primitive;
  std::vector<std::pair<int, Ref>> args;
  int64_t zero_value = -1;  // after the step, zero this value beyond the image (padded inputs)
  int64_t from = -1;
  bool swish = false;  // before zeroing, SiLU on zero_value in place (swish_bf16)
};

// A feature map in the arena: bf16, channels-last.
struct Value {
  memory::desc desc;
  int64_t level = 0;
  int first = 0, last = 0;  // steps that write it first and read it last
  size_t offset = 0;
};

// A layer's weights (or the input-channel half of them, for the decoder's split convolution) as a
// primitive wants them.
struct WeightUse {
  int64_t layer = 0, in_begin = 0, in_count = 0;
  memory::desc desc;
};

struct Plan {
  std::vector<Step> steps;
  std::vector<Value> values;
  std::vector<WeightUse> weights;
  memory::desc input, output;
  size_t scratch_offset = 0, arena_bytes = 0;
};

struct Unsupported {
  std::string what;
};

int64_t width_at(const Layers& layers, int64_t level) {
  // the level's width is the output width of its first encoder convolution (the stem's at level 0)
  if (level == 0) return layers.conv[0].weight.size(0);
  return layers.conv[size_t(3 * (level - 1) + 3)].weight.size(0);
}

bool zeroable(const memory::desc& d);
bool channels_last(const memory::desc& d);

// SiLU, x / (1 + exp(-x)), in place on bf16 values, with AVX-512: exp from a degree-5 polynomial
// on [-ln 2 / 2, ln 2 / 2] scaled by 2^n (relative error ~3e-6), the reciprocal from rcp14 and one
// Newton step; rounded to bf16 to nearest even. bf16 keeps 8 bits of mantissa (4e-3). oneDNN's
// swish post-op, exact to fp32, took as long as the 8-channel convolution it followed (0.6 of
// 1.3 ms on a 256 x 256 map); with this pass instead, a whole 256 x 256 forward took 10.7 ms
// against 12.0-13.3. The price: the convolution's output is rounded to bf16 before the SiLU, as
// LibTorch's path does, rather than after it only. (x86-64 only; elsewhere the post-op.)
#if defined(__x86_64__)
#define MONGE_AVX512 __attribute__((target("avx512f,avx512bw")))
// GCC 12 warns inside its own avx512fintrin.h (_mm512_undefined_* feeding the masked forms of the
// intrinsics below): a false positive of the header, not of this code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// 16 bf16 values (as uint16) through SiLU.
MONGE_AVX512 inline __m256i swish16(__m256i h) {
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 x = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  // m = -x, clamped so that exp(m) stays finite; exp(m) = 2^k * exp(r), r = m - k ln 2
  const __m512 m = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(-87.f)),
                                 _mm512_set1_ps(87.f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(m, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f),
                                    _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), m));
  __m512 e = _mm512_fmadd_ps(_mm512_set1_ps(1.f / 120), r, _mm512_set1_ps(1.f / 24));
  e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.f / 6));
  e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(1.f / 2));
  e = _mm512_fmadd_ps(e, r, one);
  e = _mm512_fmadd_ps(e, r, one);
  e = _mm512_scalef_ps(e, k);  // exp(-x)
  const __m512 d = _mm512_add_ps(one, e);
  __m512 inv = _mm512_rcp14_ps(d);
  inv = _mm512_mul_ps(inv, _mm512_fnmadd_ps(d, inv, _mm512_set1_ps(2.f)));  // one Newton step
  const __m512i y = _mm512_castps_si512(_mm512_mul_ps(x, inv));
  // to bf16, rounding to nearest even
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(y, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(_mm512_add_epi32(y, _mm512_set1_epi32(0x7fff)), odd);
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16));
}

MONGE_AVX512 void swish_bf16_avx512(uint16_t* p, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i),
                        swish16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i))));
  if (i < n) {  // the last few values through a full vector
    alignas(32) uint16_t rest[16] = {};
    std::memcpy(rest, p + i, (n - i) * sizeof(uint16_t));
    _mm256_store_si256(reinterpret_cast<__m256i*>(rest), swish16(_mm256_load_si256(reinterpret_cast<const __m256i*>(rest))));
    std::memcpy(p + i, rest, (n - i) * sizeof(uint16_t));
  }
}

#pragma GCC diagnostic pop

void swish_bf16(uint16_t* p, size_t n) { swish_bf16_avx512(p, n); }
#else
void swish_bf16(uint16_t*, size_t) { throw std::logic_error("unet: swish_bf16 needs x86-64"); }
#endif

// Whether plans use swish_bf16: the CPU has AVX-512 (F and BW), and MONGE_ONEDNN_SWISH is not
// "onednn" (read per plan, for comparisons: oneDNN's exact post-op instead).
bool fast_swish_available() {
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#else
  constexpr bool avx512 = false;
#endif
  const char* env = std::getenv("MONGE_ONEDNN_SWISH");
  return avx512 && (env == nullptr || std::string(env) != "onednn");
}

class Builder {
 public:
  Builder(const Layers& layers, const at::Tensor& x) : layers_(layers) {
    n_ = x.size(0), height_ = x.size(2), width_ = x.size(3);
    plan_.input = memory::desc({x.size(0), x.size(1), x.size(2), x.size(3)}, Type::f32,
                               memory::dims(x.strides().begin(), x.strides().end()));
  }

  Plan build() {
    const Layers& L = layers_;
    const int64_t depth = L.depth;
    const int64_t in = value(map_desc(plan_.input.dims()[1], 0, Tag::nhwc), 0);
    add_reorder(in);
    size_t next = 0;
    int64_t t = conv(next++, in, 0, true);
    std::vector<int64_t> skips;
    for (int64_t l = 0; l < depth; ++l) {
      t = conv(next++, t, l, true);
      t = conv(next++, t, l, true);
      skips.push_back(t);
      t = conv(next++, t, l + 1, false);
    }
    t = conv(next++, t, depth, true);
    t = conv(next++, t, depth, true);
    for (int64_t l = depth - 1; l >= 0; --l) {
      t = upsample(t, l);
      t = conv(next++, t, l, false);
      const int64_t w = width_at(L, l);
      const size_t dec = next++;
      const int64_t d = conv(dec, skips[size_t(l)], l, false, 0, w);
      conv(dec, t, l, true, w, w, d);
      t = conv(next++, d, l, true);
    }
    output(next++, t);
    assign_offsets();
    return std::move(plan_);
  }

 private:
  // A feature map's shape at `level`, in the layout oneDNN picks (`any`) or channels-last.
  memory::desc map_desc(int64_t channels, int64_t level, Tag tag = Tag::any) const {
    return memory::desc({n_, channels, height_ >> level, width_ >> level}, Type::bf16, tag);
  }

  int64_t value(const memory::desc& desc, int64_t level) {
    plan_.values.push_back({desc, level, int(plan_.steps.size()), int(plan_.steps.size()), 0});
    return int64_t(plan_.values.size() - 1);
  }

  void use(int64_t v) { plan_.values[size_t(v)].last = int(plan_.steps.size()); }

  dnnl::primitive_attr attr(const dnnl::post_ops& ops = {}) const {
    dnnl::primitive_attr a;
    a.set_post_ops(ops);
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return a;
  }

  void scratch(const memory::desc& d) { scratch_bytes_ = std::max(scratch_bytes_, d.get_size()); }

  void add_reorder(int64_t to) {
    const memory::desc& d = plan_.values[size_t(to)].desc;
    dnnl::reorder::primitive_desc pd(cpu_engine(), plan_.input, cpu_engine(), d, attr());
    scratch(pd.scratchpad_desc());
    plan_.steps.push_back({Step::Primitive, dnnl::reorder(pd),
                           {{DNNL_ARG_FROM, {Ref::Input}}, {DNNL_ARG_TO, {Ref::Value, to}},
                            {DNNL_ARG_SCRATCHPAD, {Ref::Scratch}}}});
  }

  // Nearest 2x upsampling. Of a channels-last map it is copies of whole pixels and rows, done here
  // (nearest_2x): oneDNN's resampling took about a tenth of the network's time on a 200 x 152
  // image (0.8 of 7.9 ms). Other layouts go through oneDNN.
  int64_t upsample(int64_t src, int64_t level) {
    const memory::desc s = plan_.values[size_t(src)].desc;
    if (channels_last(s)) {
      use(src);
      const int64_t dst = value(map_desc(s.dims()[1], level, Tag::nhwc), level);
      plan_.steps.push_back({Step::Upsample, {}, {{DNNL_ARG_DST, {Ref::Value, dst}}}, -1, src});
      return dst;
    }
    auto make = [&](Tag tag) {
      return dnnl::resampling_forward::primitive_desc(
          {dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_nearest, s, map_desc(s.dims()[1], level, tag)},
          attr(), cpu_engine());
    };
    auto pd = make(Tag::any);
    if (!zeroable(pd.dst_desc())) pd = make(Tag::nhwc);
    scratch(pd.scratchpad_desc());
    use(src);
    const int64_t dst = value(pd.dst_desc(), level);
    plan_.steps.push_back({Step::Primitive, dnnl::resampling_forward(pd),
                           {{DNNL_ARG_SRC, {Ref::Value, src}},
                            {DNNL_ARG_DST, {Ref::Value, dst}},
                            {DNNL_ARG_SCRATCHPAD, {Ref::Scratch}}}});
    return dst;
  }

  void append_activation(dnnl::post_ops& ops) const {
    if (layers_.activation == "relu") ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    else if (layers_.activation == "leaky_relu") ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.2f, 0.f);
    else ops.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f);
  }

  dnnl::convolution_forward::primitive_desc conv_desc(const Layer& c, int64_t in, const memory::desc& src,
                                                      const memory::desc& dst, bool bias,
                                                      const dnnl::post_ops& ops) const {
    const int64_t out = c.weight.size(0), k = c.weight.size(2), pad = k / 2, stride = c.stride;
    const memory::desc w({out, in, k, k}, Type::bf16, Tag::any), b({out}, Type::f32, Tag::x);
    const memory::dims strides{stride, stride}, left{pad, pad};
    // right padding so that the output is ceil(input / stride) a side, as LibTorch's padding 1
    const memory::dims right{(dst.dims()[2] - 1) * stride + k - src.dims()[2] - pad,
                             (dst.dims()[3] - 1) * stride + k - src.dims()[3] - pad};
    const auto kind = dnnl::prop_kind::forward_inference;
    const auto algo = dnnl::algorithm::convolution_direct;
    auto desc = bias ? dnnl::convolution_forward::desc(kind, algo, src, w, b, dst, strides, left, right)
                     : dnnl::convolution_forward::desc(kind, algo, src, w, dst, strides, left, right);
    return dnnl::convolution_forward::primitive_desc(desc, attr(ops), cpu_engine());
  }

  static bool reference(const dnnl::primitive_desc_base& pd) { return std::string(pd.impl_info_str()).rfind("ref", 0) == 0; }

  static void require_optimised(const dnnl::primitive_desc_base& pd) {
    if (reference(pd))
      throw Unsupported{"oneDNN has only its reference bf16 convolution here (" + std::string(pd.impl_info_str()) + ")"};
  }

  // Layer `layer` on value src into a new value at `level` (or, for the second half of a split
  // convolution, added into `into`); returns the value written. A split convolution uses the
  // layer's input channels [half_begin, half_begin + half_count) (half_count 0: all of them).
  int64_t conv(size_t layer, int64_t src, int64_t level, bool activation, int64_t half_begin = 0,
               int64_t half_count = 0, int64_t into = -1) {
    const Layer& c = layers_.conv[layer];
    const int64_t out = c.weight.size(0);
    const int64_t in = half_count > 0 ? half_count : c.weight.size(1);
    const memory::desc s = plan_.values[size_t(src)].desc;  // a copy: value() grows the vector
    const bool bias = into < 0;
    dnnl::post_ops ops;
    if (into >= 0) ops.append_sum(1.f);
    // SiLU as oneDNN's post-op cost as much as the convolution itself on 8 channels (its exp and
    // division are exact to fp32); where AVX-512 is there it is a pass of our own (swish_bf16)
    const bool own_swish = activation && layers_.activation == "silu" && fast_swish_available();
    if (activation && !own_swish) append_activation(ops);
    // oneDNN's choice of layout first; channels-last where that cannot be zeroed or has no
    // optimised kernel (AVX-512 without BF16 has one only for channels-last with some post-ops)
    auto pd = conv_desc(c, in, s, into >= 0 ? plan_.values[size_t(into)].desc : map_desc(out, level), bias, ops);
    if (into < 0 && (!zeroable(pd.dst_desc()) || reference(pd)))
      pd = conv_desc(c, in, s, map_desc(out, level, Tag::nhwc), bias, ops);
    require_optimised(pd);
    scratch(pd.scratchpad_desc());
    plan_.weights.push_back({int64_t(layer), half_begin, in, pd.weights_desc()});
    use(src);
    if (into >= 0) use(into);
    const int64_t dst = into >= 0 ? into : value(pd.dst_desc(), level);
    Step step{Step::Primitive, dnnl::convolution_forward(pd),
              {{DNNL_ARG_SRC, {Ref::Value, src}},
               {DNNL_ARG_WEIGHTS, {Ref::Weight, int64_t(plan_.weights.size() - 1)}},
               {DNNL_ARG_DST, {Ref::Value, dst}},
               {DNNL_ARG_SCRATCHPAD, {Ref::Scratch}}}};
    if (bias) step.args.push_back({DNNL_ARG_BIAS, {Ref::Bias, int64_t(layer)}});
    // the stride-2 and up convolutions, and every one followed by an activation, are zeroed
    // beyond the image in the LibTorch path; the first half of a split one is not (its sum is)
    if (half_count == 0 || into >= 0) step.zero_value = dst;
    step.swish = own_swish;  // own_swish implies an activation, so zero_value is dst
    plan_.steps.push_back(std::move(step));
    return dst;
  }

  // The 1x1 output convolution, fp32 into the output tensor (N x H x W x out).
  void output(size_t layer, int64_t src) {
    const Layer& c = layers_.conv[layer];
    const int64_t out = c.weight.size(0);
    plan_.output = memory::desc({n_, out, height_, width_}, Type::f32, Tag::nhwc);
    const auto pd = conv_desc(c, c.weight.size(1), plan_.values[size_t(src)].desc, plan_.output, true, {});
    require_optimised(pd);
    scratch(pd.scratchpad_desc());
    plan_.weights.push_back({int64_t(layer), 0, c.weight.size(1), pd.weights_desc()});
    use(src);
    plan_.steps.push_back({Step::Primitive, dnnl::convolution_forward(pd),
                           {{DNNL_ARG_SRC, {Ref::Value, src}},
                            {DNNL_ARG_WEIGHTS, {Ref::Weight, int64_t(plan_.weights.size() - 1)}},
                            {DNNL_ARG_BIAS, {Ref::Bias, int64_t(layer)}},
                            {DNNL_ARG_DST, {Ref::Output}},
                            {DNNL_ARG_SCRATCHPAD, {Ref::Scratch}}}});
  }

  // Feature maps share arena space when their lifetimes do not overlap (first fit in step order,
  // into the smallest free block that holds them).
  void assign_offsets() {
    constexpr size_t kAlign = 4096;
    auto round = [](size_t b) { return (b + kAlign - 1) / kAlign * kAlign; };
    struct Block {
      size_t offset, bytes;
      int free_after;  // the step after which it may be reused
    };
    std::vector<Block> blocks;
    size_t end = 0;
    for (Value& v : plan_.values) {
      const size_t bytes = round(v.desc.get_size());
      Block* best = nullptr;
      for (Block& b : blocks)
        if (b.free_after < v.first && b.bytes >= bytes && (best == nullptr || b.bytes < best->bytes)) best = &b;
      if (best == nullptr) {
        blocks.push_back({end, bytes, v.last});
        end += bytes;
        v.offset = blocks.back().offset;
      } else {
        v.offset = best->offset;
        best->free_after = v.last;
      }
    }
    plan_.scratch_offset = end;
    plan_.arena_bytes = end + round(std::max<size_t>(scratch_bytes_, 64));
  }

  const Layers& layers_;
  int64_t n_ = 0, height_ = 0, width_ = 0;
  Plan plan_;
  size_t scratch_bytes_ = 0;
};

// How a feature map's layout lets it be zeroed beyond the image: per pixel, `chunk` contiguous
// values (all channels in channels-last, one block of channels in oneDNN's blocked nChw8c or
// nChw16c) for each of `blocks` channel blocks.
struct PixelLayout {
  int64_t blocks = 0, chunk = 0, stride_n = 0, stride_block = 0, stride_h = 0, stride_w = 0;
};

bool pixel_layout(const memory::desc& d, PixelLayout& p) {
  const dnnl_memory_desc_t& md = d.data;
  if (md.ndims != 4 || md.format_kind != dnnl_blocked) return false;
  const auto& b = md.format_desc.blocking;
  if (b.inner_nblks == 0 && b.strides[1] == 1) {  // channels-last
    p = {1, md.padded_dims[1], b.strides[0], 0, b.strides[2], b.strides[3]};
  } else if (b.inner_nblks == 1 && b.inner_idxs[0] == 1) {  // channel blocks innermost
    p = {md.padded_dims[1] / b.inner_blks[0], b.inner_blks[0], b.strides[0], b.strides[1], b.strides[2], b.strides[3]};
  } else {
    return false;
  }
  return p.stride_w == p.chunk;  // a row's pixels follow each other
}

// Zeroes a bf16 map beyond its top-left h x w.
void zero_beyond(uint8_t* data, const memory::desc& d, int64_t h, int64_t w) {
  PixelLayout p;
  if (!pixel_layout(d, p)) throw std::logic_error("unet: a feature map's layout cannot be zeroed");
  const int64_t n = d.dims()[0], H = d.dims()[2], W = d.dims()[3];
  if (h >= H && w >= W) return;
  auto* base = reinterpret_cast<uint16_t*>(data);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < p.blocks; ++c)
      for (int64_t y = 0; y < H; ++y) {
        const int64_t from = y < h ? w : 0;
        if (from >= W) continue;
        std::memset(base + i * p.stride_n + c * p.stride_block + y * p.stride_h + from * p.stride_w, 0,
                    size_t((W - from) * p.chunk) * sizeof(uint16_t));
      }
}

bool zeroable(const memory::desc& d) {
  PixelLayout p;
  return pixel_layout(d, p);
}

// Whether a map is dense channels-last (nhwc).
bool channels_last(const memory::desc& d) {
  PixelLayout p;
  return pixel_layout(d, p) && p.blocks == 1 && p.chunk == d.dims()[1] && p.stride_h == d.dims()[3] * p.chunk &&
         p.stride_n == d.dims()[2] * p.stride_h;
}

// Nearest 2x upsampling of a dense channels-last bf16 map into another.
void nearest_2x(const uint8_t* from, const memory::desc& s, uint8_t* to) {
  const int64_t n = s.dims()[0], c = s.dims()[1], h = s.dims()[2], w = s.dims()[3];
  const auto* src = reinterpret_cast<const uint16_t*>(from);
  auto* dst = reinterpret_cast<uint16_t*>(to);
  const int64_t row = 2 * w * c;  // an output row
  for (int64_t i = 0; i < n * h; ++i) {
    const uint16_t* in = src + i * w * c;
    uint16_t* out = dst + 2 * i * row;
    for (int64_t x = 0; x < w; ++x, in += c, out += 2 * c) {
      std::memcpy(out, in, size_t(c) * sizeof(uint16_t));
      std::memcpy(out + c, in, size_t(c) * sizeof(uint16_t));
    }
    std::memcpy(dst + (2 * i + 1) * row, dst + 2 * i * row, size_t(row) * sizeof(uint16_t));
  }
}

std::vector<int64_t> plan_key(const at::Tensor& x) {
  std::vector<int64_t> key(x.sizes().begin(), x.sizes().end());
  key.insert(key.end(), x.strides().begin(), x.strides().end());
  return key;
}

struct KeyHash {
  size_t operator()(const std::vector<int64_t>& k) const {
    size_t h = 0;
    for (int64_t v : k) h = h * 1000003u ^ std::hash<int64_t>()(v);
    return h;
  }
};

// A layer's weights reordered for one primitive, valid while the parameter is the same tensor
// at the same version.
struct CachedWeights {
  int64_t layer, in_begin, in_count;
  memory::desc desc;
  const void* source;
  int64_t version;
  std::shared_ptr<memory> weights;
  at::Tensor storage;
};

}  // namespace

struct OneDnnGraph::Impl {
  static constexpr size_t kPlans = 64;
  std::mutex mutex;
  std::list<std::pair<std::vector<int64_t>, std::shared_ptr<const Plan>>> lru;
  std::unordered_map<std::vector<int64_t>, decltype(lru)::iterator, KeyHash> plans;
  std::vector<CachedWeights> weights;
  bool unsupported = false;

  // From now on this module runs LibTorch's ops; said once per process.
  at::Tensor give_up(const std::string& why) {
    unsupported = true;
    static std::once_flag said;
    std::call_once(said, [&] {
      std::fprintf(stderr, "monge: unet: bf16 runs LibTorch's ops, not the fused oneDNN graph: %s\n", why.c_str());
    });
    return {};
  }

  std::shared_ptr<const Plan> plan(const Layers& layers, const at::Tensor& x) {
    auto key = plan_key(x);
    auto it = plans.find(key);
    if (it != plans.end()) {
      lru.splice(lru.begin(), lru, it->second);
      return it->second->second;
    }
    auto p = std::make_shared<const Plan>(Builder(layers, x).build());
    lru.emplace_front(key, p);
    plans[key] = lru.begin();
    if (lru.size() > kPlans) {
      plans.erase(lru.back().first);
      lru.pop_back();
    }
    return p;
  }

  std::shared_ptr<memory> weights_for(const Layers& layers, const WeightUse& use) {
    const at::Tensor& w = layers.conv[size_t(use.layer)].weight;
    const void* source = w.data_ptr();
    const int64_t version = w._version();
    for (auto it = weights.begin(); it != weights.end(); ++it) {
      if (it->layer != use.layer || it->in_begin != use.in_begin || it->in_count != use.in_count || it->desc != use.desc)
        continue;
      if (it->source == source && it->version == version) return it->weights;
      weights.erase(it);
      break;
    }
    at::Tensor src = w.narrow(1, use.in_begin, use.in_count).contiguous();
    memory user(memory::desc({src.size(0), src.size(1), src.size(2), src.size(3)}, Type::f32, Tag::oihw),
                cpu_engine(), src.data_ptr());
    at::Tensor storage = at::empty({int64_t(use.desc.get_size())}, src.options().dtype(at::kByte));
    auto m = std::make_shared<memory>(use.desc, cpu_engine(), storage.data_ptr());
    dnnl::stream stream(cpu_engine());
    dnnl::reorder(user, *m).execute(stream, user, *m);
    stream.wait();
    weights.push_back({use.layer, use.in_begin, use.in_count, use.desc, source, version, m, storage});
    return m;
  }
};

OneDnnGraph::OneDnnGraph() : impl_(std::make_unique<Impl>()) {}
OneDnnGraph::~OneDnnGraph() = default;

bool OneDnnGraph::applies(const at::Tensor& x) {
  const char* env = std::getenv("MONGE_ONEDNN");  // read per call: tests and benchmarks switch it
  const bool off = env != nullptr && std::string(env) == "0";
  return !off && x.device().is_cpu() && x.scalar_type() == at::kFloat && !at::GradMode::is_enabled() &&
         at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == at::kBFloat16;
}

at::Tensor OneDnnGraph::forward(const Layers& layers, const at::Tensor& input, int64_t valid_height,
                                int64_t valid_width) {
  std::shared_ptr<const Plan> plan;
  std::vector<std::shared_ptr<memory>> weights;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->unsupported) return {};
    try {
      plan = impl_->plan(layers, input);
      for (const WeightUse& use : plan->weights) weights.push_back(impl_->weights_for(layers, use));
    } catch (const Unsupported& e) {
      return impl_->give_up(e.what);
    } catch (const dnnl::error& e) {
      return impl_->give_up(e.what());
    }
  }
  dnnl::engine& engine = cpu_engine();
  const auto& od = plan->output.dims();
  at::Tensor out = at::empty({od[0], od[2], od[3], od[1]}, input.options().dtype(at::kFloat));
  at::Tensor arena = at::empty({int64_t(plan->arena_bytes)}, input.options().dtype(at::kByte));
  auto* base = static_cast<uint8_t*>(arena.data_ptr());
  const bool padded = valid_height > 0 && (valid_height < input.size(2) || valid_width < input.size(3));
  dnnl::stream stream(engine);
  std::unordered_map<int, memory> args;
  // A primitive's arguments as memory objects over this call's buffers.
  auto bind = [&](const Step& step) -> const std::unordered_map<int, memory>& {
    args.clear();
    for (const auto& [arg, ref] : step.args) {
      switch (ref.kind) {
        case Ref::Input: args.emplace(arg, memory(plan->input, engine, input.data_ptr())); break;
        case Ref::Output: args.emplace(arg, memory(plan->output, engine, out.data_ptr())); break;
        case Ref::Value: {
          const Value& v = plan->values[size_t(ref.index)];
          args.emplace(arg, memory(v.desc, engine, base + v.offset));
          break;
        }
        case Ref::Weight: args.emplace(arg, *weights[size_t(ref.index)]); break;
        case Ref::Bias: {
          const at::Tensor& b = layers.conv[size_t(ref.index)].bias;
          args.emplace(arg, memory(memory::desc({b.numel()}, Type::f32, Tag::x), engine, b.data_ptr()));
          break;
        }
        case Ref::Scratch:
          args.emplace(arg, memory(memory::desc({int64_t(plan->arena_bytes - plan->scratch_offset)}, Type::u8, Tag::x), engine,
                                   base + plan->scratch_offset));
          break;
      }
    }
    return args;
  };
  for (const Step& step : plan->steps) {
    if (step.op == Step::Primitive) {
      step.primitive.execute(stream, bind(step));
    } else {  // Upsample
      stream.wait();
      const Value& v = plan->values[size_t(step.from)];
      nearest_2x(base + v.offset, v.desc, base + plan->values[size_t(step.args[0].second.index)].offset);
    }
    if (step.swish) {
      stream.wait();
      const Value& v = plan->values[size_t(step.zero_value)];
      swish_bf16(reinterpret_cast<uint16_t*>(base + v.offset), v.desc.get_size() / sizeof(uint16_t));
    }
    if (padded && step.zero_value >= 0) {
      stream.wait();
      const Value& v = plan->values[size_t(step.zero_value)];
      zero_beyond(base + v.offset, v.desc, valid_height >> v.level, valid_width >> v.level);
    }
  }
  stream.wait();
  at::Tensor y = out.permute({0, 3, 1, 2});
  if (layers.residual) y = y + (input.size(1) == y.size(1) ? input : input.narrow(1, 0, y.size(1)));
  return y;
}

}  // namespace unet
