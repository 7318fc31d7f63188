// SIMD128 convolutions: CreateConv2d picks one algorithm per node, each in
// its own file (shared pieces in conv_internal.h):
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
#include <memory>

#include "kernels/simd/conv_internal.h"

namespace flawlens {
namespace simd {

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
    return MakePointwiseConv(spec);
  }
  std::unique_ptr<OpImpl> op;
  if (n.groups == 1) {
    const bool winograd = n.kernel_h == 3 && n.kernel_w == 3 && n.stride_h == 1 && n.stride_w == 1 &&
                          n.dilation_h == 1 && n.dilation_w == 1 && in.c >= 8 && out.c >= 8 &&
                          out.h >= 4 && out.w >= 4;
    if (pointwise) {
      op = MakePointwiseConv(spec);
    } else if (winograd) {
      op = MakeWinogradConv(spec);
    } else {
      op = MakeDirectConv(spec);
    }
    return op;
  }
  if (n.groups == in.c && out.c == in.c) {
    op = MakeDepthwiseConv(spec);
    return op;
  }
  return MakeError(ErrorCode::kUnsupported, "simd conv2d '%s': groups=%d (not depthwise) not accelerated",
                   n.name.c_str(), n.groups);
}

}  // namespace simd
}  // namespace flawlens
