// conv2d_f32_1x1__simd128_gemm: 1x1 stride 1 unpadded convs as a GEMM over the
// contiguous pixels; "_concat": its input is a concat read in place.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "core/limits.h"
#include "kernels/simd/conv_internal.h"

namespace flawlens {
namespace simd {
namespace {

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

}  // namespace

std::unique_ptr<OpImpl> MakePointwiseConv(const OpSpec& spec) { return std::make_unique<PointwiseConv>(spec); }

}  // namespace simd
}  // namespace flawlens
