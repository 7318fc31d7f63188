// Scalar activation functions shared by the reference and SIMD kernels (the
// SIMD kernels use them for channel tails).
#pragma once

#include <algorithm>
#include <cmath>

#include "nn/graph.h"

namespace flawlens {

inline float ApplyActivation(float x, Activation act, float alpha) {
  switch (act) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return x > 0.0f ? x : 0.0f;
    case Activation::kLeakyRelu:
      return x >= 0.0f ? x : alpha * x;
    case Activation::kSilu:
      return x / (1.0f + std::exp(-x));
    case Activation::kSigmoid:
      return 1.0f / (1.0f + std::exp(-x));
    case Activation::kRelu6:
      return std::min(std::max(x, 0.0f), 6.0f);
    // The SIMD kernels evaluate these in the same order (bit-identical).
    case Activation::kHardSwish:
      return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) * alpha;
    case Activation::kHardSigmoid:
      return std::min(std::max(x + 3.0f, 0.0f), 6.0f) * alpha;
  }
  return x;
}

}  // namespace flawlens
