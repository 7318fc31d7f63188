// The SIMD128 backend (what the wasm build runs). Unaccelerated configurations
// return kUnsupported and the executor falls back to the reference backend.
#include "kernels/simd/simd_ops.h"
#include "kernels/backends.h"
#include "nn/backend.h"

namespace flawlens {
namespace {

class SimdBackend : public Backend {
 public:
  const char* name() const override { return "simd"; }
  bool Implements(OpType op) const override {
    switch (op) {
      case OpType::kConv2d:
      case OpType::kDense:
      case OpType::kActivation:
      case OpType::kAdd:
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d:
      case OpType::kGlobalAvgPool:
      case OpType::kUpsample:
      case OpType::kConcat:
      case OpType::kReduceChannels:
      case OpType::kMul:
      case OpType::kPositionMahalanobis:
        return true;
      default:
        return false;
    }
  }
  bool Has(BackendFeature feature) const override {
    return feature == BackendFeature::kConcatIntoPointwiseConv;
  }
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
