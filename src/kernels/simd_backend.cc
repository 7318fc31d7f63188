// The SIMD128 backend (what the wasm build runs). Unaccelerated configurations
// return kUnsupported and the executor falls back to the reference backend.
#include "kernels/simd/simd_ops.h"
#include "nn/backend.h"

namespace flawlens {
namespace {

class SimdBackend : public Backend {
 public:
  const char* name() const override { return "simd"; }
  Result<std::unique_ptr<OpImpl>> Create(const OpSpec& spec) override {
    switch (spec.node.op) {
      case OpType::kConv2d: return simd::CreateConv2d(spec);
      case OpType::kDense: return simd::CreateDense(spec);
      default: return simd::CreateElementwiseOp(spec);
    }
  }
};

}  // namespace

std::unique_ptr<Backend> MakeSimdBackend() { return std::make_unique<SimdBackend>(); }

}  // namespace flawlens
