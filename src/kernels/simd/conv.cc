// SIMD128 convolutions:
//   conv2d_f32__simd128_4x8           direct conv as implicit GEMM: 4 output
//                                     pixels x 8 output channels register block,
//                                     splat of the input, packed OHWI->[ocb][k][8]
//   conv2d_f32_3x3s1__winograd_simd128 Winograd F(4x4, 3x3) for 3x3 stride 1
//                                     dilation 1 with >= 8 input channels
//   conv2d_f32_1x1__simd128_gemm      1x1 stride 1 unpadded: GEMM over the
//                                     contiguous pixels, 4x8 block, activation
//                                     in the store; "_concat": its input is a
//                                     concat read in place (executor.cc)
//   dwconv2d_f32_{3x3,5x5,}__simd128_8ch  depthwise (groups == in_c == out_c),
//                                     no padded copy; 3x3 interiors 4 channels
//                                     at a time with the weights in registers
// Grouped convs (1 < groups, not depthwise) are left to the reference backend.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "core/limits.h"
#include "kernels/activation.h"
#include "kernels/simd/simd_ops.h"

namespace flawlens {
namespace simd {
namespace {

constexpr int kNr = 8;  // output channels per register block
constexpr int kMr = 4;  // output pixels per register block

inline int RoundUp(int x, int m) { return (x + m - 1) / m * m; }

// Geometry of the zero-padded copy of the input.
struct Padded {
  int h = 0, w = 0;       // padded size
  int top = 0, left = 0;  // where input pixel (0, 0) lands
};

// Copies `in` (h x w x c) into a zero-initialised padded buffer `dst`.
void PadInput(const float* in, int h, int w, int c, const Padded& p, float* dst) {
  const size_t row = static_cast<size_t>(p.w) * c;
  for (int y = 0; y < p.h; ++y) {
    float* d = dst + y * row;
    const int iy = y - p.top;
    if (iy < 0 || iy >= h) {
      std::memset(d, 0, row * sizeof(float));
      continue;
    }
    const int left = std::min(p.left, p.w);
    const int copy_w = std::max(0, std::min(w, p.w - left));
    std::memset(d, 0, static_cast<size_t>(left) * c * sizeof(float));
    if (copy_w > 0) {
      std::memcpy(d + static_cast<size_t>(left) * c, in + static_cast<size_t>(iy) * w * c,
                  static_cast<size_t>(copy_w) * c * sizeof(float));
    }
    const int right = p.w - left - copy_w;
    std::memset(d + static_cast<size_t>(left + copy_w) * c, 0,
                static_cast<size_t>(right) * c * sizeof(float));
  }
}

// The GEMM micro-kernel: MR output pixels x 8 output channels.
// For each of `n_outer` x `n_inner` segments, `seg_len` consecutive floats of
// every pixel's input are multiplied with consecutive 8-wide weight rows.
// a: input of pixel 0 (pixel i at a + i * pix_stride).
template <int MR>
inline void Tile(const float* a, int pix_stride, int n_outer, int outer_stride, int n_inner,
                 int inner_stride, int seg_len, const float* w, const float* bias, f32x4 vmin,
                 f32x4 vmax, float* out, int out_stride, int n_valid) {
  f32x4 acc0[MR], acc1[MR];
  const f32x4 b0 = Load(bias), b1 = Load(bias + 4);
  for (int i = 0; i < MR; ++i) {
    acc0[i] = b0;
    acc1[i] = b1;
  }
  for (int o = 0; o < n_outer; ++o) {
    for (int n = 0; n < n_inner; ++n) {
      const float* ap = a + o * outer_stride + n * inner_stride;
      for (int k = 0; k < seg_len; ++k) {
        const f32x4 w0 = Load(w), w1 = Load(w + 4);
        w += kNr;
        for (int i = 0; i < MR; ++i) {
          const f32x4 s = LoadSplat(ap + i * pix_stride + k);
          acc0[i] = acc0[i] + s * w0;
          acc1[i] = acc1[i] + s * w1;
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    const f32x4 v0 = Min(Max(acc0[i], vmin), vmax);
    const f32x4 v1 = Min(Max(acc1[i], vmin), vmax);
    float* o = out + i * out_stride;
    if (n_valid == kNr) {
      Store(o, v0);
      Store(o + 4, v1);
    } else {
      float tmp[kNr];
      Store(tmp, v0);
      Store(tmp + 4, v1);
      for (int j = 0; j < n_valid; ++j) o[j] = tmp[j];
    }
  }
}

// Runs Tile over `count` pixels in blocks of 4 with a 1..3 pixel tail.
inline void TileRow(int count, const float* a, int a_step, int pix_stride, int n_outer,
                    int outer_stride, int n_inner, int inner_stride, int seg_len, const float* w,
                    const float* bias, f32x4 vmin, f32x4 vmax, float* out, int out_stride,
                    int n_valid) {
  int i = 0;
  for (; i + kMr <= count; i += kMr) {
    Tile<kMr>(a + static_cast<int64_t>(i) * a_step, pix_stride, n_outer, outer_stride, n_inner,
              inner_stride, seg_len, w, bias, vmin, vmax, out + static_cast<int64_t>(i) * out_stride,
              out_stride, n_valid);
  }
  const int rest = count - i;
  const float* ar = a + static_cast<int64_t>(i) * a_step;
  float* orr = out + static_cast<int64_t>(i) * out_stride;
  if (rest == 3) {
    Tile<3>(ar, pix_stride, n_outer, outer_stride, n_inner, inner_stride, seg_len, w, bias, vmin,
            vmax, orr, out_stride, n_valid);
  } else if (rest == 2) {
    Tile<2>(ar, pix_stride, n_outer, outer_stride, n_inner, inner_stride, seg_len, w, bias, vmin,
            vmax, orr, out_stride, n_valid);
  } else if (rest == 1) {
    Tile<1>(ar, pix_stride, n_outer, outer_stride, n_inner, inner_stride, seg_len, w, bias, vmin,
            vmax, orr, out_stride, n_valid);
  }
}

// Clamp bounds fused into the micro-kernel; other activations run as a pass
// over the freshly written (cache-hot) output row.
void ClampFor(Activation act, f32x4* vmin, f32x4* vmax) {
  const bool clamped = act == Activation::kRelu || act == Activation::kRelu6;
  *vmin = Splat(clamped ? 0.0f : -std::numeric_limits<float>::infinity());
  *vmax = Splat(act == Activation::kRelu6 ? 6.0f : std::numeric_limits<float>::infinity());
}
bool NeedsPostPass(Activation act) {
  return act != Activation::kNone && act != Activation::kRelu && act != Activation::kRelu6;
}

class DirectConv : public OpImpl {
 public:
  DirectConv(const OpSpec& spec) : node_(spec.node), in_(spec.input_shapes[0]), out_(spec.output_shape) {
    const Node& n = node_;
    const int c = in_.c, oc = out_.c;
    k_ = n.kernel_h * n.kernel_w * c;
    ocp_ = RoundUp(oc, kNr);
    packed_.assign(static_cast<size_t>(ocp_) * k_, 0.0f);
    for (int o = 0; o < oc; ++o) {
      const float* src = n.weight.data + static_cast<size_t>(o) * k_;
      float* dst = packed_.data() + static_cast<size_t>(o / kNr) * k_ * kNr + o % kNr;
      for (int k = 0; k < k_; ++k) dst[k * kNr] = src[k];
    }
    bias_.assign(ocp_, 0.0f);
    if (n.bias.data != nullptr) std::copy(n.bias.data, n.bias.data + oc, bias_.begin());
    pad_ = n.pad_top > 0 || n.pad_left > 0 || n.pad_bottom > 0 || n.pad_right > 0;
    if (pad_) {
      // Only rows/columns some output reads are needed.
      geo_.top = n.pad_top;
      geo_.left = n.pad_left;
      geo_.h = (out_.h - 1) * n.stride_h + (n.kernel_h - 1) * n.dilation_h + 1;
      geo_.w = (out_.w - 1) * n.stride_w + (n.kernel_w - 1) * n.dilation_w + 1;
    } else {
      geo_.h = in_.h;
      geo_.w = in_.w;
    }
  }
  size_t workspace_floats() const override {
    return pad_ ? static_cast<size_t>(geo_.h) * geo_.w * in_.c : 0;
  }
  const char* kernel_name() const override { return "conv2d_f32__simd128_4x8"; }

  void Run(const float* const* inputs, float* output, float* workspace) override {
    const Node& n = node_;
    const int c = in_.c;
    const float* src = inputs[0];
    if (pad_) {
      PadInput(src, in_.h, in_.w, c, geo_, workspace);
      src = workspace;
    }
    f32x4 vmin, vmax;
    ClampFor(n.activation, &vmin, &vmax);
    const int wp = geo_.w;
    // Segment layout: dilation_w == 1 -> one contiguous run of kw*c floats per
    // kernel row; otherwise kw runs of c floats.
    const bool contiguous = n.dilation_w == 1;
    const int n_inner = contiguous ? 1 : n.kernel_w;
    const int inner_stride = n.dilation_w * c;
    const int seg_len = contiguous ? n.kernel_w * c : c;
    const int outer_stride = n.dilation_h * wp * c;
    const int pix_stride = n.stride_w * c;
    const int n_ocb = ocp_ / kNr;
    for (int oy = 0; oy < out_.h; ++oy) {
      const float* arow = src + static_cast<int64_t>(oy) * n.stride_h * wp * c;
      float* orow = output + static_cast<int64_t>(oy) * out_.w * out_.c;
      for (int b = 0; b < n_ocb; ++b) {
        const int n_valid = std::min(kNr, out_.c - b * kNr);
        TileRow(out_.w, arow, pix_stride, pix_stride, n.kernel_h, outer_stride, n_inner,
                inner_stride, seg_len, packed_.data() + static_cast<size_t>(b) * k_ * kNr,
                bias_.data() + b * kNr, vmin, vmax, orow + b * kNr, out_.c, n_valid);
      }
      if (NeedsPostPass(n.activation)) {
        ActivateInPlace(orow, int64_t{out_.w} * out_.c, n.activation, n.alpha);
      }
    }
  }

 private:
  Node node_;
  Shape in_, out_;
  int k_ = 0, ocp_ = 0;
  bool pad_ = false;
  Padded geo_;
  std::vector<float> packed_, bias_;
};

// ---- pointwise: 1x1, stride 1, no padding ------------------------------------
// A plain GEMM over the contiguous pixels (NHWC: pixel p's channels at p * c),
// no im2col and no padded copy: out[p][o] = bias[o] + sum_k in[p][k] w[o][k].
// Register block kPwMr pixels x kPwNv * 4 output channels (accumulators +
// weight vectors + one splat stay within the 16 xmm registers V8 has on
// x86-64); weights packed once at Create() as [ocb][k][kPwNv * 4]. The
// activation is applied to the accumulators before the store (no second pass
// over the output), in ApplyActivation's operation order, so results equal
// the post-pass form bit for bit. Pixels are independent: a row band computes
// its pixels exactly as the whole op does.
// Measured under node (V8, x86-64) on the default model's 1x1 convs: 4x8
// beats 5x8, 6x8 and 4x12 (more accumulators: likely spills), unrolling the k loop, and
// loading 4 inputs at once with lane shuffles instead of the load-splats.
constexpr int kPwMr = 4;
constexpr int kPwNv = 2;
constexpr int kPwNr = 4 * kPwNv;

// The activation as a compile-time choice for the hot pointwise and
// depthwise loops (the common ones), or the run-time switch for the rest;
// same operations either way.
template <Activation A>
struct FixedAct {
  float alpha;
  f32x4 operator()(f32x4 v) const { return ApplyActivation(v, A, alpha); }
  float Scalar(float x) const { return flawlens::ApplyActivation(x, A, alpha); }
};
struct RuntimeAct {
  Activation act;
  float alpha;
  f32x4 operator()(f32x4 v) const { return ApplyActivation(v, act, alpha); }
  float Scalar(float x) const { return flawlens::ApplyActivation(x, act, alpha); }
};

// Calls f(act functor) with the activation as a compile-time constant where
// it is a common one.
template <class F>
inline void WithAct(Activation act, float alpha, F&& f) {
  switch (act) {
    case Activation::kNone: f(FixedAct<Activation::kNone>{alpha}); break;
    case Activation::kRelu: f(FixedAct<Activation::kRelu>{alpha}); break;
    case Activation::kRelu6: f(FixedAct<Activation::kRelu6>{alpha}); break;
    case Activation::kHardSwish: f(FixedAct<Activation::kHardSwish>{alpha}); break;
    default: f(RuntimeAct{act, alpha}); break;
  }
}

// One input of a pointwise conv: `c` channels per pixel, pixel p at
// data + p * c. A conv whose input is a concat of several maps can read them
// in place (the executor drops the concat): the k loop runs over the inputs
// in concat order, so the sums are the same as over the concatenated map.
struct PwSegment {
  const float* data;
  int c;
};
constexpr int kPwMaxSegments = 4;

template <int MR, class Act>
inline void PwTile(const PwSegment* segs, int n_segs, int64_t p0, const float* w, const float* bias,
                   Act act, float* out, int out_stride, int n_valid) {
  f32x4 acc[MR][kPwNv];
  for (int j = 0; j < kPwNv; ++j) {
    const f32x4 b = Load(bias + 4 * j);
    for (int i = 0; i < MR; ++i) acc[i][j] = b;
  }
  for (int sgi = 0; sgi < n_segs; ++sgi) {
    const int k = segs[sgi].c;
    const float* ap[MR];
    for (int i = 0; i < MR; ++i) ap[i] = segs[sgi].data + (p0 + i) * k;
    for (int kk = 0; kk < k; ++kk) {
      f32x4 wv[kPwNv];
      for (int j = 0; j < kPwNv; ++j) wv[j] = Load(w + 4 * j);
      w += kPwNr;
      for (int i = 0; i < MR; ++i) {
        const f32x4 s = LoadSplat(ap[i] + kk);
        for (int j = 0; j < kPwNv; ++j) acc[i][j] = acc[i][j] + s * wv[j];
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* o = out + static_cast<ptrdiff_t>(i) * out_stride;
    if (n_valid == kPwNr) {
      for (int j = 0; j < kPwNv; ++j) Store(o + 4 * j, act(acc[i][j]));
    } else {
      float tmp[kPwNr];
      for (int j = 0; j < kPwNv; ++j) Store(tmp + 4 * j, act(acc[i][j]));
      for (int j = 0; j < n_valid; ++j) o[j] = tmp[j];
    }
  }
}

template <int MR, class Act>
void PwTail(int rest, const PwSegment* segs, int n_segs, int64_t p0, const float* w,
            const float* bias, Act act, float* out, int out_stride, int n_valid) {
  if constexpr (MR > 1) {
    if (rest == MR - 1) {
      PwTile<MR - 1>(segs, n_segs, p0, w, bias, act, out, out_stride, n_valid);
    } else {
      PwTail<MR - 1>(rest, segs, n_segs, p0, w, bias, act, out, out_stride, n_valid);
    }
  }
}

class PointwiseConv : public OpImpl {
 public:
  PointwiseConv(const OpSpec& spec)
      : node_(spec.node), out_(spec.output_shape) {
    for (const Shape& s : spec.input_shapes) {
      seg_c_.push_back(s.c);
      k_ += s.c;
    }
    const int k = k_, oc = out_.c;
    ocp_ = RoundUp(oc, kPwNr);
    packed_.assign(static_cast<size_t>(ocp_) * k, 0.0f);
    for (int o = 0; o < oc; ++o) {
      const float* src = node_.weight.data + static_cast<size_t>(o) * k;
      float* dst = packed_.data() + static_cast<size_t>(o / kPwNr) * k * kPwNr + o % kPwNr;
      for (int i = 0; i < k; ++i) dst[static_cast<size_t>(i) * kPwNr] = src[i];
    }
    bias_.assign(ocp_, 0.0f);
    if (node_.bias.data != nullptr) std::copy(node_.bias.data, node_.bias.data + oc, bias_.begin());
  }
  const char* kernel_name() const override {
    return seg_c_.size() > 1 ? "conv2d_f32_1x1__simd128_gemm_concat" : "conv2d_f32_1x1__simd128_gemm";
  }

  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const int k = k_, oc = out_.c;
    const int64_t pixels = int64_t{out_.h} * out_.w;
    const int n_ocb = ocp_ / kPwNr;
    const int n_segs = static_cast<int>(seg_c_.size());
    PwSegment segs[kPwMaxSegments];
    for (int i = 0; i < n_segs; ++i) segs[i] = {inputs[i], seg_c_[i]};
    WithAct(node_.activation, node_.alpha, [&](auto act) {
      int64_t p = 0;
      for (; p + kPwMr <= pixels; p += kPwMr) {
        float* o = output + p * oc;
        for (int b = 0; b < n_ocb; ++b) {
          PwTile<kPwMr>(segs, n_segs, p, packed_.data() + static_cast<size_t>(b) * k * kPwNr,
                        bias_.data() + b * kPwNr, act, o + b * kPwNr, oc, std::min(kPwNr, oc - b * kPwNr));
        }
      }
      const int rest = static_cast<int>(pixels - p);
      if (rest > 0) {
        float* o = output + p * oc;
        for (int b = 0; b < n_ocb; ++b) {
          PwTail<kPwMr>(rest, segs, n_segs, p, packed_.data() + static_cast<size_t>(b) * k * kPwNr,
                        bias_.data() + b * kPwNr, act, o + b * kPwNr, oc, std::min(kPwNr, oc - b * kPwNr));
        }
      }
    });
  }

 private:
  Node node_;
  Shape out_;
  int k_ = 0, ocp_ = 0;
  std::vector<int> seg_c_;
  std::vector<float> packed_, bias_;
};

// ---- Winograd F(4x4, 3x3) ---------------------------------------------------
// Y = A^T [ (G g G^T) .* (B^T d B) ] A, 6x6 input tiles, 4x4 output tiles:
// 36 multiplies per output tile per (ic, oc) instead of 144. The 36
// element-wise products over channels are 36 GEMMs (tiles x C) * (C x OC)
// run with the same 4x8 micro-kernel.

template <class T>
inline void InputTransform1d(T d0, T d1, T d2, T d3, T d4, T d5, T* o, int s) {
  o[0 * s] = (d0 * 4.0f - d2 * 5.0f) + d4;
  o[1 * s] = (d3 + d4) - (d1 + d2) * 4.0f;
  o[2 * s] = (d4 - d3) + (d1 - d2) * 4.0f;
  o[3 * s] = (d4 - d2) + (d3 - d1) * 2.0f;
  o[4 * s] = (d4 - d2) + (d1 - d3) * 2.0f;
  o[5 * s] = (d1 * 4.0f - d3 * 5.0f) + d5;
}

template <class T>
inline void OutputTransform1d(T m0, T m1, T m2, T m3, T m4, T m5, T* y, int s) {
  const T a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
  y[0 * s] = m0 + a + c;
  y[1 * s] = b + d * 2.0f;
  y[2 * s] = a + c * 4.0f;
  y[3 * s] = (b + d * 8.0f) + m5;
}

// d: 36 input values (row-major 6x6) -> v: 36 transformed values B^T d B.
template <class T>
inline void InputTransform(const T* d, T* v) {
  T t[36];
  for (int j = 0; j < 6; ++j) InputTransform1d(d[j], d[6 + j], d[12 + j], d[18 + j], d[24 + j], d[30 + j], t + j, 6);
  for (int i = 0; i < 6; ++i) {
    const T* r = t + 6 * i;
    InputTransform1d(r[0], r[1], r[2], r[3], r[4], r[5], v + 6 * i, 1);
  }
}

// m: 36 values -> y: 16 outputs (row-major 4x4) A^T m A.
template <class T>
inline void OutputTransform(const T* m, T* y) {
  T t[24];
  for (int j = 0; j < 6; ++j) OutputTransform1d(m[j], m[6 + j], m[12 + j], m[18 + j], m[24 + j], m[30 + j], t + j, 6);
  for (int i = 0; i < 4; ++i) {
    const T* r = t + 6 * i;
    OutputTransform1d(r[0], r[1], r[2], r[3], r[4], r[5], y + 4 * i, 1);
  }
}

class WinogradConv : public OpImpl {
 public:
  static constexpr int kTile = 4, kPoints = 36;

  WinogradConv(const OpSpec& spec) : node_(spec.node), in_(spec.input_shapes[0]), out_(spec.output_shape) {
    const Node& n = node_;
    const int c = in_.c, oc = out_.c;
    ocp_ = RoundUp(oc, kNr);
    // U = G g G^T in double, packed [point][ocb][ic][8].
    static const double kG[6][3] = {{1.0 / 4, 0, 0},
                                    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                    {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                    {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                    {0, 0, 1}};
    u_.assign(static_cast<size_t>(kPoints) * ocp_ * c, 0.0f);
    for (int o = 0; o < oc; ++o) {
      for (int ic = 0; ic < c; ++ic) {
        double g[3][3];
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) g[ky][kx] = n.weight.data[((static_cast<size_t>(o) * 3 + ky) * 3 + kx) * c + ic];
        double tmp[6][3];
        for (int i = 0; i < 6; ++i)
          for (int kx = 0; kx < 3; ++kx)
            tmp[i][kx] = kG[i][0] * g[0][kx] + kG[i][1] * g[1][kx] + kG[i][2] * g[2][kx];
        for (int i = 0; i < 6; ++i) {
          for (int j = 0; j < 6; ++j) {
            const double u = tmp[i][0] * kG[j][0] + tmp[i][1] * kG[j][1] + tmp[i][2] * kG[j][2];
            const size_t idx = ((static_cast<size_t>(i * 6 + j) * (ocp_ / kNr) + o / kNr) * c + ic) * kNr + o % kNr;
            u_[idx] = static_cast<float>(u);
          }
        }
      }
    }
    bias_.assign(ocp_, 0.0f);
    if (n.bias.data != nullptr) std::copy(n.bias.data, n.bias.data + oc, bias_.begin());
    zeros_.assign(kNr, 0.0f);
    tiles_h_ = (out_.h + kTile - 1) / kTile;
    tiles_w_ = (out_.w + kTile - 1) / kTile;
    geo_.top = n.pad_top;
    geo_.left = n.pad_left;
    geo_.h = tiles_h_ * kTile + 2;
    geo_.w = tiles_w_ * kTile + 2;
    // Tiles per block: transformed input + products of one block ~1 MiB.
    const int total = tiles_h_ * tiles_w_;
    const int budget = (256 * 1024) / (kPoints * (c + ocp_));
    block_ = std::max(kMr, std::min(RoundUp(total, kMr), budget / kMr * kMr));
  }

  size_t workspace_floats() const override {
    return static_cast<size_t>(geo_.h) * geo_.w * in_.c +
           static_cast<size_t>(kPoints) * block_ * (in_.c + ocp_);
  }
  const char* kernel_name() const override { return "conv2d_f32_3x3s1__winograd_simd128"; }

  void Run(const float* const* inputs, float* output, float* workspace) override {
    const int c = in_.c;
    float* pin = workspace;
    PadInput(inputs[0], in_.h, in_.w, c, geo_, pin);
    float* v = pin + static_cast<size_t>(geo_.h) * geo_.w * c;
    float* m = v + static_cast<size_t>(kPoints) * block_ * c;
    const int total = tiles_h_ * tiles_w_;
    for (int t0 = 0; t0 < total; t0 += block_) {
      const int nt = std::min(block_, total - t0);
      TransformInput(pin, t0, nt, v);
      Multiply(v, nt, m);
      TransformOutput(m, t0, nt, output);
    }
  }

 private:
  void TransformInput(const float* pin, int t0, int nt, float* v) const {
    const int c = in_.c;
    const size_t point_stride = static_cast<size_t>(block_) * c;
    const size_t row = static_cast<size_t>(geo_.w) * c;
    for (int t = 0; t < nt; ++t) {
      const int ty = (t0 + t) / tiles_w_, tx = (t0 + t) % tiles_w_;
      const float* base = pin + static_cast<size_t>(ty) * kTile * row + static_cast<size_t>(tx) * kTile * c;
      float* dst = v + static_cast<size_t>(t) * c;
      int ch = 0;
      for (; ch + 4 <= c; ch += 4) {
        f32x4 d[36], r[36];
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) d[i * 6 + j] = Load(base + i * row + j * c + ch);
        InputTransform(d, r);
        for (int p = 0; p < kPoints; ++p) Store(dst + p * point_stride + ch, r[p]);
      }
      for (; ch < c; ++ch) {
        float d[36], r[36];
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) d[i * 6 + j] = base[i * row + j * c + ch];
        InputTransform(d, r);
        for (int p = 0; p < kPoints; ++p) dst[p * point_stride + ch] = r[p];
      }
    }
  }

  void Multiply(const float* v, int nt, float* m) const {
    const int c = in_.c;
    const int n_ocb = ocp_ / kNr;
    const f32x4 vmin = Splat(-std::numeric_limits<float>::infinity());
    const f32x4 vmax = Splat(std::numeric_limits<float>::infinity());
    for (int p = 0; p < kPoints; ++p) {
      const float* vp = v + static_cast<size_t>(p) * block_ * c;
      float* mp = m + static_cast<size_t>(p) * block_ * ocp_;
      const float* up = u_.data() + static_cast<size_t>(p) * ocp_ * c;
      for (int b = 0; b < n_ocb; ++b) {
        TileRow(nt, vp, c, c, 1, 0, 1, 0, c, up + static_cast<size_t>(b) * c * kNr, zeros_.data(),
                vmin, vmax, mp + b * kNr, ocp_, kNr);
      }
    }
  }

  void TransformOutput(const float* m, int t0, int nt, float* output) const {
    const Node& n = node_;
    const int oc = out_.c;
    const size_t point_stride = static_cast<size_t>(block_) * ocp_;
    for (int t = 0; t < nt; ++t) {
      const int ty = (t0 + t) / tiles_w_, tx = (t0 + t) % tiles_w_;
      const int rows = std::min(kTile, out_.h - ty * kTile);
      const int cols = std::min(kTile, out_.w - tx * kTile);
      const float* src = m + static_cast<size_t>(t) * ocp_;
      float* dst = output + (static_cast<size_t>(ty) * kTile * out_.w + static_cast<size_t>(tx) * kTile) * oc;
      for (int ch = 0; ch < oc; ch += 4) {
        f32x4 d[36], y[16];
        for (int p = 0; p < kPoints; ++p) d[p] = Load(src + p * point_stride + ch);
        OutputTransform(d, y);
        const f32x4 b = Load(bias_.data() + ch);
        const int lanes = std::min(4, oc - ch);
        for (int i = 0; i < rows; ++i) {
          for (int j = 0; j < cols; ++j) {
            const f32x4 r = ApplyActivation(y[i * 4 + j] + b, n.activation, n.alpha);
            float* o = dst + (static_cast<size_t>(i) * out_.w + j) * oc + ch;
            if (lanes == 4) {
              Store(o, r);
            } else {
              for (int l = 0; l < lanes; ++l) o[l] = r[l];
            }
          }
        }
      }
    }
  }

  Node node_;
  Shape in_, out_;
  int ocp_ = 0, tiles_h_ = 0, tiles_w_ = 0, block_ = 0;
  Padded geo_;
  std::vector<float> u_, bias_, zeros_;
};

// ---- depthwise --------------------------------------------------------------
// Weights packed per block of 8 channels: [block][tap][8] (the last block
// zero-padded), bias padded to a multiple of 8. No padded copy of the input:
// output pixels whose window lies inside the input (all but a border of about
// kernel / 2) read fixed tap offsets, unrolled for 3x3 and 5x5; border pixels
// visit only their taps inside the input (TF "SAME" asymmetric padding
// included). Two vectors (8 channels) per step keep two independent add
// chains in flight.
constexpr int kDwBlock = 8;

// One output pixel over all channels: `base` is the input at the window's
// top-left tap, taps at base + offs[t] (floats). T > 0: compile-time tap count.
template <int T, class Act>
inline void DwInteriorPixel(const float* base, const int64_t* offs, int taps, int c,
                            const float* w, const float* bias, Act act, float* out) {
  const int n = T > 0 ? T : taps;
  int ch = 0;
  for (; ch + kDwBlock <= c; ch += kDwBlock) {
    const float* wb = w + static_cast<size_t>(ch) * n;
    f32x4 a0 = Load(bias + ch), a1 = Load(bias + ch + 4);
    for (int t = 0; t < n; ++t) {
      const float* p = base + offs[t] + ch;
      a0 = a0 + Load(p) * Load(wb + t * kDwBlock);
      a1 = a1 + Load(p + 4) * Load(wb + t * kDwBlock + 4);
    }
    Store(out + ch, act(a0));
    Store(out + ch + 4, act(a1));
  }
  if (ch + 4 <= c) {
    const float* wb = w + static_cast<size_t>(ch) * n;
    f32x4 a0 = Load(bias + ch);
    for (int t = 0; t < n; ++t) a0 = a0 + Load(base + offs[t] + ch) * Load(wb + t * kDwBlock);
    Store(out + ch, act(a0));
    ch += 4;
  }
  for (; ch < c; ++ch) {
    const float* wb = w + static_cast<size_t>(ch / kDwBlock) * kDwBlock * n + ch % kDwBlock;
    float acc = bias[ch];
    for (int t = 0; t < n; ++t) acc += base[offs[t] + ch] * wb[t * kDwBlock];
    out[ch] = act.Scalar(acc);
  }
}

// 3x3 depthwise over `count` consecutive output pixels of one row whose
// windows lie inside the input, 4 channels [ch, ch + 4) at a time with that
// block's 9 weights held in registers (9 loads per pixel instead of 18).
// in: input at the first pixel's top-left tap and channel ch; taps at
// in + ky * row_step + kx * tap_step; pixel i at in + i * pix_step.
// w: the block's tap-t weights at w + t * kDwBlock. Each output is
// bias + sum over taps in tap order, as in DwInteriorPixel.
template <class Act>
void Dw3x3Run(const float* in, int64_t row_step, int64_t tap_step, int64_t pix_step, int count,
              const float* w, const float* bias, Act act, float* out, int64_t out_step) {
  const f32x4 w0 = Load(w), w1 = Load(w + kDwBlock), w2 = Load(w + 2 * kDwBlock);
  const f32x4 w3 = Load(w + 3 * kDwBlock), w4 = Load(w + 4 * kDwBlock), w5 = Load(w + 5 * kDwBlock);
  const f32x4 w6 = Load(w + 6 * kDwBlock), w7 = Load(w + 7 * kDwBlock), w8 = Load(w + 8 * kDwBlock);
  const f32x4 b = Load(bias);
  const int r = static_cast<int>(row_step), t = static_cast<int>(tap_step);
  for (int i = 0; i < count; ++i) {
    const float* p0 = in;
    const float* p1 = in + r;
    const float* p2 = p1 + r;
    f32x4 acc = b + Load(p0) * w0;
    acc = acc + Load(p0 + t) * w1;
    acc = acc + Load(p0 + 2 * t) * w2;
    acc = acc + Load(p1) * w3;
    acc = acc + Load(p1 + t) * w4;
    acc = acc + Load(p1 + 2 * t) * w5;
    acc = acc + Load(p2) * w6;
    acc = acc + Load(p2 + t) * w7;
    acc = acc + Load(p2 + 2 * t) * w8;
    Store(out, act(acc));
    in += pix_step;
    out += out_step;
  }
}

class DepthwiseConv : public OpImpl {
 public:
  DepthwiseConv(const OpSpec& spec) : node_(spec.node), in_(spec.input_shapes[0]), out_(spec.output_shape) {
    const Node& n = node_;
    const int c = in_.c;
    taps_ = n.kernel_h * n.kernel_w;
    const int cp = RoundUp(c, kDwBlock);
    w_.assign(static_cast<size_t>(taps_) * cp, 0.0f);
    for (int ch = 0; ch < c; ++ch) {
      float* dst = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * taps_ + ch % kDwBlock;
      for (int t = 0; t < taps_; ++t) dst[t * kDwBlock] = n.weight.data[static_cast<size_t>(ch) * taps_ + t];
    }
    bias_.assign(cp, 0.0f);
    if (n.bias.data != nullptr) std::copy(n.bias.data, n.bias.data + c, bias_.begin());
    for (int ky = 0; ky < n.kernel_h; ++ky)
      for (int kx = 0; kx < n.kernel_w; ++kx)
        offs_.push_back((static_cast<int64_t>(ky) * n.dilation_h * in_.w + static_cast<int64_t>(kx) * n.dilation_w) * c);
    // Output columns [x_lo_, x_hi_) have every tap inside the input width.
    x_lo_ = 0;
    while (x_lo_ < out_.w && x_lo_ * n.stride_w - n.pad_left < 0) ++x_lo_;
    x_hi_ = out_.w;
    while (x_hi_ > x_lo_ && (x_hi_ - 1) * n.stride_w - n.pad_left + (n.kernel_w - 1) * n.dilation_w >= in_.w) --x_hi_;
  }
  const char* kernel_name() const override {
    const Node& n = node_;
    if (n.kernel_h == 3 && n.kernel_w == 3) return "dwconv2d_f32_3x3__simd128_8ch";
    if (n.kernel_h == 5 && n.kernel_w == 5) return "dwconv2d_f32_5x5__simd128_8ch";
    return "dwconv2d_f32__simd128_8ch";
  }

  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const Node& n = node_;
    const int c = in_.c;
    const float* x = inputs[0];
    const Activation act = n.activation;
    const float alpha = n.alpha;
    for (int oy = 0; oy < out_.h; ++oy) {
      const int iy0 = oy * n.stride_h - n.pad_top;
      const bool rows_inside = iy0 >= 0 && iy0 + (n.kernel_h - 1) * n.dilation_h < in_.h;
      float* orow = output + static_cast<size_t>(oy) * out_.w * c;
      int ox = 0;
      if (rows_inside) {
        for (; ox < x_lo_; ++ox) BorderPixel(x, oy, ox, orow + static_cast<size_t>(ox) * c);
        const float* row = x + static_cast<int64_t>(iy0) * in_.w * c;
        if (taps_ == 9 && x_hi_ > ox) {
          Interior3x3(row + static_cast<int64_t>(ox * n.stride_w - n.pad_left) * c, x_hi_ - ox,
                      orow + static_cast<size_t>(ox) * c);
          ox = x_hi_;
        }
        if (ox < x_hi_) {
          WithAct(act, alpha, [&](auto fixed) {
            for (; ox < x_hi_; ++ox) {
              const float* base = row + static_cast<int64_t>(ox * n.stride_w - n.pad_left) * c;
              float* o = orow + static_cast<size_t>(ox) * c;
              if (taps_ == 25) {
                DwInteriorPixel<25>(base, offs_.data(), taps_, c, w_.data(), bias_.data(), fixed, o);
              } else {
                DwInteriorPixel<0>(base, offs_.data(), taps_, c, w_.data(), bias_.data(), fixed, o);
              }
            }
          });
        }
      }
      for (; ox < out_.w; ++ox) BorderPixel(x, oy, ox, orow + static_cast<size_t>(ox) * c);
    }
  }

 private:
  // `count` interior pixels of a 3x3 depthwise row: 4-channel blocks with the
  // weights in registers, then the (c % 4) last channels pixel by pixel.
  void Interior3x3(const float* in, int count, float* out) const {
    const Node& n = node_;
    const int c = in_.c;
    const int64_t row_step = static_cast<int64_t>(n.dilation_h) * in_.w * c;
    const int64_t tap_step = static_cast<int64_t>(n.dilation_w) * c;
    const int64_t pix_step = static_cast<int64_t>(n.stride_w) * c;
    const float alpha = n.alpha;
    int ch = 0;
    for (; ch + 4 <= c; ch += 4) {
      const float* w = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * 9 + ch % kDwBlock;
      const float* b = bias_.data() + ch;
      WithAct(n.activation, alpha, [&](auto act) {
        Dw3x3Run(in + ch, row_step, tap_step, pix_step, count, w, b, act, out + ch, c);
      });
    }
    for (; ch < c; ++ch) {
      const float* wb = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * 9 + ch % kDwBlock;
      for (int i = 0; i < count; ++i) {
        const float* base = in + i * pix_step + ch;
        float acc = bias_[ch];
        for (int t = 0; t < 9; ++t) acc += base[offs_[t]] * wb[t * kDwBlock];
        out[static_cast<int64_t>(i) * c + ch] = flawlens::ApplyActivation(acc, n.activation, alpha);
      }
    }
  }

  // A pixel whose window crosses the input border: the same 8-channel steps
  // over only the taps inside the input (padding contributes zeros).
  void BorderPixel(const float* x, int oy, int ox, float* out) const {
    const Node& n = node_;
    const int c = in_.c;
    const int iy0 = oy * n.stride_h - n.pad_top, ix0 = ox * n.stride_w - n.pad_left;
    int64_t offs[kMaxKernel * kMaxKernel];
    int widx[kMaxKernel * kMaxKernel];
    int nt = 0;
    for (int ky = 0; ky < n.kernel_h; ++ky) {
      const int iy = iy0 + ky * n.dilation_h;
      if (iy < 0 || iy >= in_.h) continue;
      for (int kx = 0; kx < n.kernel_w; ++kx) {
        const int ix = ix0 + kx * n.dilation_w;
        if (ix < 0 || ix >= in_.w) continue;
        offs[nt] = (static_cast<int64_t>(iy) * in_.w + ix) * c;
        widx[nt++] = (ky * n.kernel_w + kx) * kDwBlock;
      }
    }
    const float* bias = bias_.data();
    const Activation act = n.activation;
    const float alpha = n.alpha;
    int ch = 0;
    for (; ch + kDwBlock <= c; ch += kDwBlock) {
      const float* wb = w_.data() + static_cast<size_t>(ch) * taps_;
      f32x4 a0 = Load(bias + ch), a1 = Load(bias + ch + 4);
      for (int t = 0; t < nt; ++t) {
        const float* p = x + offs[t] + ch;
        a0 = a0 + Load(p) * Load(wb + widx[t]);
        a1 = a1 + Load(p + 4) * Load(wb + widx[t] + 4);
      }
      Store(out + ch, ApplyActivation(a0, act, alpha));
      Store(out + ch + 4, ApplyActivation(a1, act, alpha));
    }
    if (ch + 4 <= c) {
      const float* wb = w_.data() + static_cast<size_t>(ch) * taps_;
      f32x4 a0 = Load(bias + ch);
      for (int t = 0; t < nt; ++t) a0 = a0 + Load(x + offs[t] + ch) * Load(wb + widx[t]);
      Store(out + ch, ApplyActivation(a0, act, alpha));
      ch += 4;
    }
    for (; ch < c; ++ch) {
      const float* wb = w_.data() + static_cast<size_t>(ch / kDwBlock) * kDwBlock * taps_ + ch % kDwBlock;
      float acc = bias[ch];
      for (int t = 0; t < nt; ++t) acc += x[offs[t] + ch] * wb[widx[t]];
      out[ch] = flawlens::ApplyActivation(acc, act, alpha);
    }
  }

  Node node_;
  Shape in_, out_;
  int taps_ = 0, x_lo_ = 0, x_hi_ = 0;
  std::vector<int64_t> offs_;
  std::vector<float> w_, bias_;
};

}  // namespace

Result<std::unique_ptr<OpImpl>> CreateConv2d(const OpSpec& spec) {
  const Node& n = spec.node;
  if (spec.input_shapes.empty() || n.weight.data == nullptr) {
    return MakeError(ErrorCode::kInternal, "simd conv2d '%s': needs an input and weights", n.name.c_str());
  }
  const Shape& in = spec.input_shapes[0];
  const Shape& out = spec.output_shape;
  const bool pointwise = n.kernel_h == 1 && n.kernel_w == 1 && n.stride_h == 1 && n.stride_w == 1 &&
                         n.pad_top == 0 && n.pad_left == 0 && n.pad_bottom == 0 && n.pad_right == 0;
  if (spec.input_shapes.size() > 1) {
    // The inputs of a concat read in place: pointwise convs only, every
    // input of the output's size, channels adding up to the weights'.
    int64_t channels = 0;
    bool same_size = true;
    for (const Shape& s : spec.input_shapes) {
      channels += s.c;
      same_size = same_size && s.h == out.h && s.w == out.w;
    }
    const bool fits = pointwise && n.groups == 1 && same_size &&
                      spec.input_shapes.size() <= static_cast<size_t>(kPwMaxSegments) &&
                      n.weight.elements() == channels * out.c;
    if (!fits) {
      return MakeError(ErrorCode::kUnsupported, "simd conv2d '%s': %zu inputs only for a pointwise conv",
                       n.name.c_str(), spec.input_shapes.size());
    }
    std::unique_ptr<OpImpl> op = std::make_unique<PointwiseConv>(spec);
    return op;
  }
  std::unique_ptr<OpImpl> op;
  if (n.groups == 1) {
    const bool winograd = n.kernel_h == 3 && n.kernel_w == 3 && n.stride_h == 1 && n.stride_w == 1 &&
                          n.dilation_h == 1 && n.dilation_w == 1 && in.c >= 8 && out.c >= 8 &&
                          out.h >= 4 && out.w >= 4;
    if (pointwise) {
      op = std::make_unique<PointwiseConv>(spec);
    } else if (winograd) {
      op = std::make_unique<WinogradConv>(spec);
    } else {
      op = std::make_unique<DirectConv>(spec);
    }
    return op;
  }
  if (n.groups == in.c && out.c == in.c) {
    op = std::make_unique<DepthwiseConv>(spec);
    return op;
  }
  return MakeError(ErrorCode::kUnsupported, "simd conv2d '%s': groups=%d (not depthwise) not accelerated",
                   n.name.c_str(), n.groups);
}

}  // namespace simd
}  // namespace flawlens
