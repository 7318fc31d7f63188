// Internals of the SIMD128 convolutions, shared by their files (conv.cc
// chooses the algorithm; conv_direct.cc, conv_pointwise.cc, conv_winograd.cc,
// conv_depthwise.cc implement one each): the 4x8 GEMM micro-kernel of the
// direct and Winograd convs, the padded input copy, activation helpers.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>

#include "kernels/activation.h"
#include "kernels/simd/simd_ops.h"

namespace flawlens {
namespace simd {

// One factory per algorithm; CreateConv2d (conv.cc) has checked that the
// node fits the algorithm.
std::unique_ptr<OpImpl> MakeDirectConv(const OpSpec& spec);
std::unique_ptr<OpImpl> MakePointwiseConv(const OpSpec& spec);  // also a concat read in place
std::unique_ptr<OpImpl> MakeWinogradConv(const OpSpec& spec);
std::unique_ptr<OpImpl> MakeDepthwiseConv(const OpSpec& spec);


inline constexpr int kNr = 8;  // output channels per register block
inline constexpr int kMr = 4;  // output pixels per register block

inline int RoundUp(int x, int m) { return (x + m - 1) / m * m; }

// Geometry of the zero-padded copy of the input.
struct Padded {
  int h = 0, w = 0;       // padded size
  int top = 0, left = 0;  // where input pixel (0, 0) lands
};

// Copies `in` (h x w x c) into a zero-initialised padded buffer `dst`.
inline void PadInput(const float* in, int h, int w, int c, const Padded& p, float* dst) {
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
inline void ClampFor(Activation act, f32x4* vmin, f32x4* vmax) {
  const bool clamped = act == Activation::kRelu || act == Activation::kRelu6;
  *vmin = Splat(clamped ? 0.0f : -std::numeric_limits<float>::infinity());
  *vmax = Splat(act == Activation::kRelu6 ? 6.0f : std::numeric_limits<float>::infinity());
}
inline bool NeedsPostPass(Activation act) {
  return act != Activation::kNone && act != Activation::kRelu && act != Activation::kRelu6;
}



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
inline constexpr int kPwMaxSegments = 4;

}  // namespace simd
}  // namespace flawlens
