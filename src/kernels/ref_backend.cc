// The reference backend: one OpImpl per op type, wrapping kernels/ref/.
#include <memory>
#include <vector>

#include "kernels/ref/ref_kernels.h"
#include "nn/backend.h"

namespace flawlens {
namespace {

class RefOp : public OpImpl {
 public:
  RefOp(const OpSpec& spec, const char* name)
      : node_(spec.node), ins_(spec.input_shapes), out_(spec.output_shape), name_(name) {}
  const char* kernel_name() const override { return name_; }

  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    const Node& n = node_;
    switch (n.op) {
      case OpType::kConv2d:
        ref::Conv2d(n, ins_[0], out_, inputs[0], n.weight.data, n.bias.data, output);
        break;
      case OpType::kActivation:
        ref::ActivationOp(n.activation, n.alpha, out_.elements(), inputs[0], output);
        break;
      case OpType::kMaxPool2d:
        ref::MaxPool2d(n, ins_[0], out_, inputs[0], output);
        break;
      case OpType::kAvgPool2d:
        ref::AvgPool2d(n, ins_[0], out_, inputs[0], output);
        break;
      case OpType::kGlobalAvgPool:
        ref::GlobalAvgPool(ins_[0], inputs[0], output);
        break;
      case OpType::kDense:
        ref::Dense(n, ins_[0], out_.c, inputs[0], n.weight.data, n.bias.data, output);
        break;
      case OpType::kUpsample:
        ref::Upsample(n, ins_[0], out_, inputs[0], output);
        break;
      case OpType::kConcat:
        ref::Concat(ins_, inputs, out_, output);
        break;
      case OpType::kAdd:
        ref::Add(n, out_.elements(), inputs[0], inputs[1], output);
        break;
      case OpType::kReduceChannels:
        ref::ReduceChannels(n.reduce_mode, ins_[0], inputs[0], output);
        break;
      case OpType::kMul:
        ref::Mul(n, ins_[0], ins_[1], inputs[0], inputs[1], output);
        break;
      case OpType::kPositionMahalanobis:
        ref::PositionMahalanobis(ins_[0], inputs[0], n.weight.data, n.bias.data, output,
                                 int(n.weight.shape[0]), int(n.weight.shape[1]));
        break;
    }
  }

 private:
  Node node_;  // copy: attributes + weight pointers (weights owned by the model)
  std::vector<Shape> ins_;
  Shape out_;
  const char* name_;
};

const char* RefKernelName(OpType op) {
  switch (op) {
    case OpType::kConv2d: return "conv2d_f32__ref";
    case OpType::kActivation: return "activation_f32__ref";
    case OpType::kMaxPool2d: return "maxpool2d_f32__ref";
    case OpType::kAvgPool2d: return "avgpool2d_f32__ref";
    case OpType::kGlobalAvgPool: return "global_avgpool_f32__ref";
    case OpType::kDense: return "dense_f32__ref";
    case OpType::kUpsample: return "upsample_f32__ref";
    case OpType::kConcat: return "concat_f32__ref";
    case OpType::kAdd: return "add_f32__ref";
    case OpType::kReduceChannels: return "reduce_channels_f32__ref";
    case OpType::kMul: return "mul_f32__ref";
    case OpType::kPositionMahalanobis: return "position_mahalanobis_f32__ref";
  }
  return "unknown__ref";
}

class RefBackend : public Backend {
 public:
  const char* name() const override { return "ref"; }
  Result<std::unique_ptr<OpImpl>> Create(const OpSpec& spec) override {
    const Node& n = spec.node;
    const size_t want_inputs = n.op == OpType::kAdd || n.op == OpType::kMul ? 2
                               : n.op == OpType::kConcat                   ? 0
                                                                           : 1;
    if (want_inputs != 0 && spec.input_shapes.size() != want_inputs) {
      return MakeError(ErrorCode::kInternal, "ref %s '%s': expected %zu inputs, got %zu",
                       OpTypeName(n.op), n.name.c_str(), want_inputs, spec.input_shapes.size());
    }
    if ((n.op == OpType::kConv2d || n.op == OpType::kDense ||
         n.op == OpType::kPositionMahalanobis) &&
        n.weight.data == nullptr) {
      return MakeError(ErrorCode::kInternal, "ref %s '%s': no weight data", OpTypeName(n.op),
                       n.name.c_str());
    }
    if (n.op == OpType::kPositionMahalanobis && n.bias.data == nullptr) {
      return MakeError(ErrorCode::kInternal, "ref position_mahalanobis '%s': no bias data",
                       n.name.c_str());
    }
    if (n.op == OpType::kConv2d && (n.groups <= 0 || spec.input_shapes[0].c % n.groups != 0 ||
                                    spec.output_shape.c % n.groups != 0)) {
      return MakeError(ErrorCode::kInternal, "ref conv2d '%s': bad groups %d", n.name.c_str(),
                       n.groups);
    }
    std::unique_ptr<OpImpl> op = std::make_unique<RefOp>(spec, RefKernelName(n.op));
    return op;
  }
};

}  // namespace

std::unique_ptr<Backend> MakeRefBackend() { return std::make_unique<RefBackend>(); }

}  // namespace flawlens
