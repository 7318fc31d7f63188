// Factories of the SIMD128 operators (one body for SSE2 and wasm SIMD128).
// Each returns kUnsupported for configurations it does not accelerate, so the
// executor falls back to the reference kernels.
#pragma once

#include <memory>

#include "core/simd128.h"
#include "nn/backend.h"

namespace flawlens {
namespace simd {

// Applies an activation to one vector, in the operation order of the scalar
// flawlens::ApplyActivation (kernels/activation.h).
inline f32x4 ApplyActivation(f32x4 v, Activation act, float alpha) {
  switch (act) {
    case Activation::kNone: return v;
    case Activation::kRelu: return Max(v, Splat(0.0f));
    case Activation::kLeakyRelu: {
      // x >= 0 ? x : alpha * x, branch-free: max(x,0) + alpha * min(x,0).
      return Max(v, Splat(0.0f)) + Splat(alpha) * Min(v, Splat(0.0f));
    }
    case Activation::kSilu: return v * Sigmoid(v);
    case Activation::kSigmoid: return Sigmoid(v);
    case Activation::kRelu6: return Min(Max(v, Splat(0.0f)), Splat(6.0f));
    case Activation::kHardSwish:
      return v * Min(Max(v + Splat(3.0f), Splat(0.0f)), Splat(6.0f)) * Splat(alpha);
    case Activation::kHardSigmoid:
      return Min(Max(v + Splat(3.0f), Splat(0.0f)), Splat(6.0f)) * Splat(alpha);
  }
  return v;
}

// In place over n floats (vector body + scalar tail).
void ActivateInPlace(float* data, int64_t n, Activation act, float alpha);

Result<std::unique_ptr<OpImpl>> CreateConv2d(const OpSpec& spec);
Result<std::unique_ptr<OpImpl>> CreateDense(const OpSpec& spec);
Result<std::unique_ptr<OpImpl>> CreateElementwiseOp(const OpSpec& spec);  // everything else

}  // namespace simd
}  // namespace flawlens
