// Scalar reference kernels: plain loops, the specification every optimised
// kernel is tested against. NHWC float32, batch 1. Shapes and attributes are
// assumed validated (Graph::Finalize); these functions never fail.
#pragma once

#include <vector>

#include "nn/graph.h"

namespace flawlens {
namespace ref {

// conv2d: weight OHWI per group ([out_c][kh][kw][in_c / groups]), bias may be
// null. Accumulates in double. Applies node.activation.
void Conv2d(const Node& node, const Shape& in, const Shape& out, const float* input,
            const float* weight, const float* bias, float* output);
void ActivationOp(Activation act, float alpha, int64_t n, const float* input, float* output);
void MaxPool2d(const Node& node, const Shape& in, const Shape& out, const float* input,
               float* output);
void AvgPool2d(const Node& node, const Shape& in, const Shape& out, const float* input,
               float* output);
void GlobalAvgPool(const Shape& in, const float* input, float* output);
// weight [out][in], in = in.elements() in NHWC order.
void Dense(const Node& node, const Shape& in, int out_features, const float* input,
           const float* weight, const float* bias, float* output);
void Upsample(const Node& node, const Shape& in, const Shape& out, const float* input,
              float* output);
void Concat(const std::vector<Shape>& ins, const float* const* inputs, const Shape& out,
            float* output);
void Add(const Node& node, int64_t n, const float* a, const float* b, float* output);
void ReduceChannels(ReduceMode mode, const Shape& in, const float* input, float* output);
// a: `in`; b: `in` or 1 x 1 x in.c (broadcast over h, w). Applies node.activation.
void Mul(const Node& node, const Shape& in, const Shape& in_b, const float* a, const float* b,
         float* output);
// out[p] = sum_k (sum_j A_p[k][j] (x_p[j] - mu_p[j]))^2, A = weight [h][w][c][c],
// mu = bias [h][w][c]. Accumulates in double.
// Weight [grid_h, grid_w, c, c]: cell p = (y, x) uses region PositionRegion().
void PositionMahalanobis(const Shape& in, const float* input, const float* weight,
                         const float* bias, float* output, int grid_h, int grid_w);

}  // namespace ref
}  // namespace flawlens
