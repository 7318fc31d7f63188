// conv2d_f32__simd128_4x8: direct conv as implicit GEMM, 4 output pixels x 8
// output channels register block, splat of the input, weights packed
// OHWI->[ocb][k][8] (conv_internal.h has the micro-kernel).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "core/limits.h"
#include "kernels/simd/conv_internal.h"

namespace flawlens {
namespace simd {
namespace {

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

}  // namespace

std::unique_ptr<OpImpl> MakeDirectConv(const OpSpec& spec) { return std::make_unique<DirectConv>(spec); }

}  // namespace simd
}  // namespace flawlens
