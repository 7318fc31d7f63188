// The network as a graph of NHWC float32 operators (batch 1).
//
// Values: value 0 is the network input; node i produces value i + 1. Nodes are
// stored in topological order (a node may only read values produced before
// it), so a loaded graph cannot contain a cycle.
//
// Weight layouts (what the model file stores, what kernels read):
//   conv2d  weight [out_c][kernel_h][kernel_w][in_c / groups]  (OHWI, per group
//           consecutive output channels), bias [out_c] (optional)
//   dense   weight [out][in] with `in` in NHWC-flatten order, bias [out]
//   position_mahalanobis  weight [gh][gw][c][c] (a whitening matrix per
//           region of cells, row-major; gh = h, gw = w: one per cell),
//           bias [h][w][c] (per position mean mu_p)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "nn/op_table.h"

namespace flawlens {

struct Shape {
  int h = 0, w = 0, c = 0;
  int64_t elements() const { return int64_t{h} * w * c; }
  bool operator==(const Shape& o) const { return h == o.h && w == o.w && c == o.c; }
  bool operator!=(const Shape& o) const { return !(*this == o); }
};

// relu6 = min(max(x, 0), 6); hard_swish = x * relu6(x + 3) * alpha;
// hard_sigmoid = relu6(x + 3) * alpha (alpha: DefaultAlpha() unless given).
enum class Activation {
  kNone, kRelu, kLeakyRelu, kSilu, kSigmoid, kRelu6, kHardSwish, kHardSigmoid
};
enum class UpsampleMode { kNearest, kBilinear };
enum class ReduceMode { kSumSquares, kMin, kMax, kMean };

const char* OpTypeName(OpType op);          // "conv2d", ... (the op table's name)
const char* ActivationName(Activation act);  // "relu", ...
// Inverses of the two: false (and *out unchanged) for an unknown name.
bool ParseOpType(const std::string& name, OpType* out);
bool ParseActivation(const std::string& name, Activation* out);
// The `alpha` an activation gets when the model does not give one: 1/6 for
// hard_swish and hard_sigmoid, 0.01 (the LeakyReLU slope) otherwise.
float DefaultAlpha(Activation act);

struct TensorRef {
  const float* data = nullptr;     // owned by the Model (aligned storage)
  std::vector<int64_t> shape;      // as declared in the file
  int64_t elements() const;
};

struct Node {
  std::string name;
  OpType op = OpType::kActivation;
  std::vector<int> inputs;  // value ids (0 = network input, i+1 = node i)

  // conv2d / pools
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int groups = 1;
  int out_channels = 0;            // conv2d / dense
  bool count_include_pad = true;   // avgpool

  // fused (conv2d, dense, add, mul) or standalone (activation) activation
  Activation activation = Activation::kNone;
  float alpha = 0.01f;             // leaky_relu slope / hard_* scale; code that
                                   // sets `activation` sets DefaultAlpha() too

  // upsample: output size is in * scale
  UpsampleMode upsample_mode = UpsampleMode::kBilinear;
  int scale_h = 2, scale_w = 2;

  // reduce_channels
  ReduceMode reduce_mode = ReduceMode::kSumSquares;

  // conv2d / dense / position_mahalanobis parameters
  TensorRef weight;
  TensorRef bias;                  // data == nullptr -> no bias (required for
                                   // position_mahalanobis)
};

struct Graph {
  Shape input;
  std::vector<Node> nodes;
  int output = 0;                  // value id of the network output
  std::vector<std::string> output_names;  // optional named extra outputs (unused by executor)

  // Filled by Finalize(): shape of every value (size nodes.size() + 1).
  std::vector<Shape> shapes;
  int depth = 0;                   // longest path input -> output, in nodes

  // Validates wiring, attributes, weight shapes and limits (core/limits.h) and
  // infers every value's shape. Never aborts; names the offending node.
  Status Finalize();

  const Shape& output_shape() const { return shapes[output]; }
  int64_t Macs() const;            // multiply-accumulates of conv2d, dense and
                                   // position_mahalanobis
};

// position_mahalanobis: the whitening region of map cell p (row-major in an
// h x w map) when the weight holds grid_h x grid_w regions.
inline int64_t PositionRegion(int64_t p, int h, int w, int grid_h, int grid_w) {
  const int64_t y = p / w, x = p % w;
  return (y * grid_h / h) * grid_w + x * grid_w / w;
}

// Output size of a conv/pool window along one axis; <= 0 means invalid.
int64_t WindowOutputSize(int64_t in, int kernel, int stride, int dilation, int pad_before,
                         int pad_after);

}  // namespace flawlens
