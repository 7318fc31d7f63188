// The reference backend: every op of the op table (nn/op_table.h), each
// through its kernel in kernels/ref/. The spec the other backends are tested
// against, so it implements every op: a table row without a RefRun<Name>
// below does not compile.
#include <memory>
#include <vector>

#include "kernels/ref/ref_kernels.h"
#include "kernels/backends.h"
#include "nn/backend.h"

namespace flawlens {
namespace {

// What one op's kernel is called with: the node (attributes, weights), the
// input shapes, the output shape, the input and output buffers.
struct RefArgs {
  const Node& n;
  const std::vector<Shape>& ins;
  const Shape& out;
  const float* const* in;
  float* output;
};

void RefRunConv2d(const RefArgs& a) {
  ref::Conv2d(a.n, a.ins[0], a.out, a.in[0], a.n.weight.data, a.n.bias.data, a.output);
}
void RefRunActivation(const RefArgs& a) {
  ref::ActivationOp(a.n.activation, a.n.alpha, a.out.elements(), a.in[0], a.output);
}
void RefRunMaxPool2d(const RefArgs& a) { ref::MaxPool2d(a.n, a.ins[0], a.out, a.in[0], a.output); }
void RefRunAvgPool2d(const RefArgs& a) { ref::AvgPool2d(a.n, a.ins[0], a.out, a.in[0], a.output); }
void RefRunGlobalAvgPool(const RefArgs& a) { ref::GlobalAvgPool(a.ins[0], a.in[0], a.output); }
void RefRunDense(const RefArgs& a) {
  ref::Dense(a.n, a.ins[0], a.out.c, a.in[0], a.n.weight.data, a.n.bias.data, a.output);
}
void RefRunUpsample(const RefArgs& a) { ref::Upsample(a.n, a.ins[0], a.out, a.in[0], a.output); }
void RefRunConcat(const RefArgs& a) { ref::Concat(a.ins, a.in, a.out, a.output); }
void RefRunAdd(const RefArgs& a) { ref::Add(a.n, a.out.elements(), a.in[0], a.in[1], a.output); }
void RefRunReduceChannels(const RefArgs& a) {
  ref::ReduceChannels(a.n.reduce_mode, a.ins[0], a.in[0], a.output);
}
void RefRunMul(const RefArgs& a) {
  ref::Mul(a.n, a.ins[0], a.ins[1], a.in[0], a.in[1], a.output);
}
void RefRunPositionMahalanobis(const RefArgs& a) {
  ref::PositionMahalanobis(a.ins[0], a.in[0], a.n.weight.data, a.n.bias.data, a.output,
                           int(a.n.weight.shape[0]), int(a.n.weight.shape[1]));
}

// One row per op, in OpType order.
struct RefKernel {
  void (*run)(const RefArgs&);
  const char* name;
};
constexpr RefKernel kRefKernels[] = {
#define FLAWLENS_REF_KERNEL(Name, text, ...) {&RefRun##Name, text "_f32__ref"},
    FLAWLENS_OPS(FLAWLENS_REF_KERNEL)
#undef FLAWLENS_REF_KERNEL
};
static_assert(sizeof(kRefKernels) / sizeof(kRefKernels[0]) == kOpCount,
              "the reference backend has one kernel per op");

class RefOp : public OpImpl {
 public:
  explicit RefOp(const OpSpec& spec)
      : node_(spec.node), ins_(spec.input_shapes), out_(spec.output_shape),
        kernel_(kRefKernels[static_cast<int>(spec.node.op)]) {}
  const char* kernel_name() const override { return kernel_.name; }

  void Run(const float* const* inputs, float* output, float* /*workspace*/) override {
    kernel_.run(RefArgs{node_, ins_, out_, inputs, output});
  }

 private:
  Node node_;  // copy: attributes + weight pointers (weights owned by the model)
  std::vector<Shape> ins_;
  Shape out_;
  RefKernel kernel_;
};

class RefBackend : public Backend {
 public:
  const char* name() const override { return "ref"; }
  bool Implements(OpType op) const override { return ValidOpType(op); }
  Result<std::unique_ptr<OpImpl>> Create(const OpSpec& spec) override {
    const Node& n = spec.node;
    if (!ValidOpType(n.op)) {
      return MakeError(ErrorCode::kInternal, "ref: '%s' has an unknown op code %d", n.name.c_str(),
                       static_cast<int>(n.op));
    }
    const OpInfo& info = InfoOf(n.op);
    // Concat reads any number of inputs (row bands pass them all).
    const size_t want = info.arity == OpArity::kTwo ? 2 : info.arity == OpArity::kOne ? 1 : 0;
    if (want != 0 && spec.input_shapes.size() != want) {
      return MakeError(ErrorCode::kInternal, "ref %s '%s': expected %zu inputs, got %zu",
                       info.name, n.name.c_str(), want, spec.input_shapes.size());
    }
    if (info.tensors != OpTensors::kNone && n.weight.data == nullptr) {
      return MakeError(ErrorCode::kInternal, "ref %s '%s': no weight data", info.name,
                       n.name.c_str());
    }
    if (info.tensors == OpTensors::kWeightAndBias && n.bias.data == nullptr) {
      return MakeError(ErrorCode::kInternal, "ref %s '%s': no bias data", info.name,
                       n.name.c_str());
    }
    if (info.attrs == OpAttrs::kConv &&
        (n.groups <= 0 || spec.input_shapes[0].c % n.groups != 0 ||
         spec.output_shape.c % n.groups != 0)) {
      return MakeError(ErrorCode::kInternal, "ref conv2d '%s': bad groups %d", n.name.c_str(),
                       n.groups);
    }
    std::unique_ptr<OpImpl> op = std::make_unique<RefOp>(spec);
    return op;
  }
};

}  // namespace

std::unique_ptr<Backend> MakeRefBackend() { return std::make_unique<RefBackend>(); }

}  // namespace flawlens
