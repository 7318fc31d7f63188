// XNNPACK backend (Debian libxnnpack, API of Feb 2022), native builds only.
//
// Each graph node becomes one or more XNNPACK operators ("steps") created in
// Create() (weights are packed by XNNPACK then; our conv layout OHWI with
// per-group consecutive output channels and dense [out][in] are XNNPACK's
// native layouts). Operators are set up with the executor's buffer pointers in
// Prepare() and only re-set up if Run() sees different pointers.
//
// Coverage (anything else returns kUnsupported and the executor falls back):
//   conv2d (groups, dilation, asymmetric padding), dense, add, mul (in1 of
//     in0's shape or 1x1xC, broadcast): relu and relu6 folded into output
//     min/max; leaky_relu / sigmoid / hard_swish as in-place operators after
//     it; silu = x * sigmoid(x) with a workspace.
//   activation: relu, relu6 (clamp), leaky_relu, sigmoid, silu, hard_swish
//     (XNNPACK's x * relu6(x + 3) / 6, then a scalar multiply by 6 * alpha
//     unless alpha is 1/6), hard_sigmoid (add 3 with output range [0, 6],
//     then multiply by alpha: the reference's operation order).
//   maxpool2d (XNNPACK ignores padded cells = PyTorch's -inf padding).
//   avgpool2d without padding, or with padding and count_include_pad=false
//     (XNNPACK divides by the number of valid cells at the borders); with
//     padding and count_include_pad=true it is kUnsupported.
//   global_avgpool, upsample bilinear (half-pixel centres), concat (strided
//     copies). Not covered: upsample nearest, reduce_channels,
//     position_mahalanobis.
//
// Without FLAWLENS_HAVE_XNNPACK (wasm) this file compiles to a stub.
#include "kernels/backends.h"
#include "nn/backend.h"

#if defined(FLAWLENS_HAVE_XNNPACK)

#include <pthreadpool.h>
#include <xnnpack.h>

#include "core/limits.h"

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace flawlens {

namespace {

bool InitXnnpack() {
  static const bool ok = xnn_initialize(nullptr) == xnn_status_success;
  return ok;
}

struct Threadpool {
  explicit Threadpool(size_t threads) : pool(pthreadpool_create(threads)) {}
  ~Threadpool() {
    if (pool != nullptr) pthreadpool_destroy(pool);
  }
  pthreadpool_t pool;
};

struct OperatorDeleter {
  void operator()(xnn_operator_t op) const {
    if (op != nullptr) xnn_delete_operator(op);
  }
};
using OperatorPtr = std::unique_ptr<struct xnn_operator, OperatorDeleter>;

// Binds an operator to the current buffers.
using SetupFn = std::function<xnn_status(xnn_operator_t op, const float* const* inputs,
                                         float* output, float* workspace, pthreadpool_t pool)>;

constexpr float kInf = std::numeric_limits<float>::infinity();

class XnnpackOp : public OpImpl {
 public:
  XnnpackOp(std::shared_ptr<Threadpool> pool, int num_inputs, size_t output_elements,
            std::string name)
      : pool_(std::move(pool)),
        cached_inputs_(num_inputs, nullptr),
        output_elements_(output_elements),
        name_(std::move(name)) {}

  Status Add(const char* what, xnn_status create_status, xnn_operator_t op, SetupFn setup) {
    OperatorPtr owned(op);
    if (create_status != xnn_status_success || op == nullptr)
      return MakeError(ErrorCode::kUnsupported, "xnnpack: %s failed (xnn_status %d)", what,
                       static_cast<int>(create_status));
    steps_.push_back(Step{std::move(owned), std::move(setup), what});
    return Status::Ok();
  }

  void set_workspace_floats(size_t n) { workspace_floats_ = n; }
  size_t workspace_floats() const override { return workspace_floats_; }
  const char* kernel_name() const override { return name_.c_str(); }

  Status Prepare(const float* const* inputs, float* output, float* workspace) override {
    return Bind(inputs, output, workspace);
  }

  void Run(const float* const* inputs, float* output, float* workspace) override {
    if (!bound_ || !SamePointers(inputs, output, workspace)) {
      if (!Bind(inputs, output, workspace).ok()) {
        // Cannot happen after a successful Prepare() with the same shapes
        // (only reachable when an OpImpl is driven without the executor);
        // make a failure visible rather than leave stale data.
        for (size_t i = 0; i < output_elements_; ++i)
          output[i] = std::numeric_limits<float>::quiet_NaN();
        return;
      }
    }
    pthreadpool_t pool = pool_ ? pool_->pool : nullptr;
    for (auto& step : steps_) xnn_run_operator(step.op.get(), pool);
  }

 private:
  struct Step {
    OperatorPtr op;
    SetupFn setup;
    const char* what;
  };

  bool SamePointers(const float* const* inputs, float* output, float* workspace) const {
    if (output != cached_output_ || workspace != cached_workspace_) return false;
    for (size_t i = 0; i < cached_inputs_.size(); ++i)
      if (inputs[i] != cached_inputs_[i]) return false;
    return true;
  }

  Status Bind(const float* const* inputs, float* output, float* workspace) {
    bound_ = false;
    pthreadpool_t pool = pool_ ? pool_->pool : nullptr;
    for (auto& step : steps_) {
      xnn_status st = step.setup(step.op.get(), inputs, output, workspace, pool);
      if (st != xnn_status_success)
        return MakeError(ErrorCode::kInternal, "xnnpack: setup of %s failed (xnn_status %d)",
                         step.what, static_cast<int>(st));
    }
    for (size_t i = 0; i < cached_inputs_.size(); ++i) cached_inputs_[i] = inputs[i];
    cached_output_ = output;
    cached_workspace_ = workspace;
    bound_ = true;
    return Status::Ok();
  }

  std::shared_ptr<Threadpool> pool_;
  std::vector<Step> steps_;
  std::vector<const float*> cached_inputs_;
  float* cached_output_ = nullptr;
  float* cached_workspace_ = nullptr;
  bool bound_ = false;
  size_t output_elements_;
  size_t workspace_floats_ = 0;
  std::string name_;
};

// Output clamp range of an operator with a fused activation.
void FusedRange(Activation act, float* lo, float* hi) {
  const bool clamped = act == Activation::kRelu || act == Activation::kRelu6;
  *lo = clamped ? 0.0f : -kInf;
  *hi = act == Activation::kRelu6 ? 6.0f : kInf;
}

bool FoldsIntoRange(Activation act) {
  return act == Activation::kNone || act == Activation::kRelu || act == Activation::kRelu6;
}

// out = src * k elementwise (k a scalar broadcast by XNNPACK), in place when
// src is the output.
template <class SourceFn>
Status AddScalarMultiply(XnnpackOp* op, float k, size_t n, SourceFn source) {
  auto scalar = std::make_shared<const float>(k);
  xnn_operator_t x = nullptr;
  const xnn_status st = xnn_create_multiply_nd_f32(-kInf, kInf, 0, &x);
  return op->Add("xnn_create_multiply_nd_f32", st, x,
                 [n, scalar, source](xnn_operator_t o, const float* const* in, float* out, float*,
                                     pthreadpool_t p) {
                   const size_t dims[1] = {n};
                   const size_t one[1] = {1};
                   return xnn_setup_multiply_nd_f32(o, 1, dims, 1, one, source(in, out),
                                                    scalar.get(), out, p);
                 });
}

// Appends the in-place operators for activations that cannot be folded into
// an output range (leaky_relu, sigmoid, silu) acting on `output` of `shape`.
// For silu the first operator writes sigmoid(x) into the workspace.
Status AddActivationSteps(XnnpackOp* op, Activation act, float alpha, const Shape& shape,
                          bool standalone) {
  const size_t c = static_cast<size_t>(shape.c);
  const size_t pixels = static_cast<size_t>(shape.h) * static_cast<size_t>(shape.w);
  // The source of the activation: the node input when standalone, else the
  // output the main operator just wrote (in place).
  auto source = [standalone](const float* const* inputs, float* output) -> const float* {
    return standalone ? inputs[0] : output;
  };
  xnn_operator_t x = nullptr;
  auto in_place = [](const float* const*, float* output) -> const float* { return output; };
  switch (act) {
    case Activation::kNone:
      return Status::Ok();
    case Activation::kRelu:
    case Activation::kRelu6: {
      // Only reached for standalone activations (else folded).
      float lo, hi;
      FusedRange(act, &lo, &hi);
      xnn_status st = xnn_create_clamp_nc_f32(c, c, c, lo, hi, 0, &x);
      return op->Add("xnn_create_clamp_nc_f32", st, x,
                     [pixels, source](xnn_operator_t o, const float* const* in, float* out,
                                      float*, pthreadpool_t p) {
                       return xnn_setup_clamp_nc_f32(o, pixels, source(in, out), out, p);
                     });
    }
    case Activation::kLeakyRelu: {
      xnn_status st = xnn_create_leaky_relu_nc_f32(c, c, c, alpha, 0, &x);
      return op->Add("xnn_create_leaky_relu_nc_f32", st, x,
                     [pixels, source](xnn_operator_t o, const float* const* in, float* out,
                                      float*, pthreadpool_t p) {
                       return xnn_setup_leaky_relu_nc_f32(o, pixels, source(in, out), out, p);
                     });
    }
    case Activation::kSigmoid: {
      xnn_status st = xnn_create_sigmoid_nc_f32(c, c, c, 0, &x);
      return op->Add("xnn_create_sigmoid_nc_f32", st, x,
                     [pixels, source](xnn_operator_t o, const float* const* in, float* out,
                                      float*, pthreadpool_t p) {
                       return xnn_setup_sigmoid_nc_f32(o, pixels, source(in, out), out, p);
                     });
    }
    case Activation::kHardSwish: {
      xnn_status st = xnn_create_hardswish_nc_f32(c, c, c, 0, &x);
      FLAWLENS_RETURN_IF_ERROR(op->Add(
          "xnn_create_hardswish_nc_f32", st, x,
          [pixels, source](xnn_operator_t o, const float* const* in, float* out, float*,
                           pthreadpool_t p) {
            return xnn_setup_hardswish_nc_f32(o, pixels, source(in, out), out, p);
          }));
      if (alpha == 1.0f / 6.0f) return Status::Ok();
      return AddScalarMultiply(op, alpha * 6.0f, pixels * c, in_place);
    }
    case Activation::kHardSigmoid: {
      auto three = std::make_shared<const float>(3.0f);
      xnn_status st = xnn_create_add_nd_f32(0.0f, 6.0f, 0, &x);
      const size_t n = pixels * c;
      FLAWLENS_RETURN_IF_ERROR(op->Add(
          "xnn_create_add_nd_f32", st, x,
          [n, three, source](xnn_operator_t o, const float* const* in, float* out, float*,
                             pthreadpool_t p) {
            const size_t dims[1] = {n};
            const size_t one[1] = {1};
            return xnn_setup_add_nd_f32(o, 1, dims, 1, one, source(in, out), three.get(), out, p);
          }));
      return AddScalarMultiply(op, alpha, n, in_place);
    }
    case Activation::kSilu: {
      xnn_status st = xnn_create_sigmoid_nc_f32(c, c, c, 0, &x);
      FLAWLENS_RETURN_IF_ERROR(op->Add(
          "xnn_create_sigmoid_nc_f32", st, x,
          [pixels, source](xnn_operator_t o, const float* const* in, float* out, float* ws,
                           pthreadpool_t p) {
            return xnn_setup_sigmoid_nc_f32(o, pixels, source(in, out), ws, p);
          }));
      x = nullptr;
      st = xnn_create_multiply_nd_f32(-kInf, kInf, 0, &x);
      const size_t n = pixels * c;
      op->set_workspace_floats(n);
      return op->Add("xnn_create_multiply_nd_f32", st, x,
                     [n, source](xnn_operator_t o, const float* const* in, float* out, float* ws,
                                 pthreadpool_t p) {
                       const size_t dims[1] = {n};
                       return xnn_setup_multiply_nd_f32(o, 1, dims, 1, dims, source(in, out), ws,
                                                        out, p);
                     });
    }
  }
  return MakeError(ErrorCode::kUnsupported, "xnnpack: unknown activation");
}

std::string WindowName(const char* op, const Node& node) {
  std::string name = std::string(op) + "_f32_" + std::to_string(node.kernel_h) + "x" +
                     std::to_string(node.kernel_w);
  if (node.stride_h == node.stride_w) {
    name += "s" + std::to_string(node.stride_h);
  } else {
    name += "s" + std::to_string(node.stride_h) + "x" + std::to_string(node.stride_w);
  }
  if (node.dilation_h != 1 || node.dilation_w != 1)
    name += "d" + std::to_string(node.dilation_h) + "x" + std::to_string(node.dilation_w);
  return name + "__xnnpack";
}

// XNNPACK's window operators (conv, pools, bilinear resize) allocate an
// indirection buffer of one pointer per output pixel and window tap at setup,
// outside the executor's arena: a hostile but valid model (31x31 window on a
// 2048x2048 map) would make it tens of GiB. Above kMaxArenaBytes the node is
// kUnsupported here and the executor falls back to the SIMD kernels.
Status CheckIndirection(const char* op, const Shape& out, int64_t taps) {
  const double bytes = static_cast<double>(out.h) * out.w * static_cast<double>(taps) *
                       static_cast<double>(sizeof(void*));
  if (bytes > static_cast<double>(kMaxArenaBytes))
    return MakeError(ErrorCode::kUnsupported,
                     "xnnpack: %s on a %dx%d output would need a %.0f MiB indirection buffer "
                     "(limit %lld MiB)",
                     op, out.h, out.w, bytes / (1 << 20),
                     static_cast<long long>(kMaxArenaBytes >> 20));
  return Status::Ok();
}

// Max or average pooling (NHWC, channels = in.c, no fused clamp). The two
// XNNPACK operators differ only in their create/setup calls; average pooling
// takes no dilation (Graph::Finalize rejects dilation != 1 there).
Status AddPoolingStep(XnnpackOp* op, const Node& node, const Shape& in, bool max) {
  const size_t c = static_cast<size_t>(in.c);
  xnn_operator_t x = nullptr;
  const xnn_status st =
      max ? xnn_create_max_pooling2d_nhwc_f32(
                node.pad_top, node.pad_right, node.pad_bottom, node.pad_left, node.kernel_h,
                node.kernel_w, node.stride_h, node.stride_w, node.dilation_h, node.dilation_w, c,
                c, c, -kInf, kInf, 0, &x)
          : xnn_create_average_pooling2d_nhwc_f32(
                node.pad_top, node.pad_right, node.pad_bottom, node.pad_left, node.kernel_h,
                node.kernel_w, node.stride_h, node.stride_w, c, c, c, -kInf, kInf, 0, &x);
  const size_t h = in.h, w = in.w;
  return op->Add(
      max ? "xnn_create_max_pooling2d_nhwc_f32" : "xnn_create_average_pooling2d_nhwc_f32", st, x,
      [h, w, max](xnn_operator_t o, const float* const* i, float* y, float*, pthreadpool_t p) {
        return max ? xnn_setup_max_pooling2d_nhwc_f32(o, 1, h, w, i[0], y, p)
                   : xnn_setup_average_pooling2d_nhwc_f32(o, 1, h, w, i[0], y, p);
      });
}

class XnnpackBackend : public Backend {
 public:
  explicit XnnpackBackend(int threads)
      : pool_(threads > 1 ? std::make_shared<Threadpool>(static_cast<size_t>(threads))
                          : nullptr) {
    if (pool_ && pool_->pool == nullptr) pool_.reset();
  }
  const char* name() const override { return "xnnpack"; }
  bool Implements(OpType op) const override {
    switch (op) {
      case OpType::kConv2d:
      case OpType::kDense:
      case OpType::kAdd:
      case OpType::kMul:
      case OpType::kActivation:
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d:
      case OpType::kGlobalAvgPool:
      case OpType::kUpsample:
      case OpType::kConcat:
        return true;
      default:
        return false;
    }
  }
  bool Has(BackendFeature feature) const override {
    return feature == BackendFeature::kOwnThreads;
  }

  Result<std::unique_ptr<OpImpl>> Create(const OpSpec& spec) override {
    const Node& node = spec.node;
    const Shape& in = spec.input_shapes[0];
    const Shape& out = spec.output_shape;
    std::unique_ptr<XnnpackOp> op;
    switch (node.op) {
      case OpType::kConv2d: {
        FLAWLENS_RETURN_IF_ERROR(
            CheckIndirection("conv2d", out, int64_t{node.kernel_h} * node.kernel_w));
        const bool depthwise = node.groups > 1 && node.groups == in.c && node.groups == out.c;
        op = MakeOp(spec, WindowName(depthwise ? "dwconv2d" : "conv2d", node));
        float lo, hi;
        FusedRange(node.activation, &lo, &hi);
        const size_t gic = static_cast<size_t>(in.c / node.groups);
        const size_t goc = static_cast<size_t>(out.c / node.groups);
        xnn_operator_t x = nullptr;
        xnn_status st = xnn_create_convolution2d_nhwc_f32(
            node.pad_top, node.pad_right, node.pad_bottom, node.pad_left, node.kernel_h,
            node.kernel_w, node.stride_h, node.stride_w, node.dilation_h, node.dilation_w,
            node.groups, gic, goc, in.c, out.c, node.weight.data, node.bias.data, lo, hi, 0, &x);
        const size_t h = in.h, w = in.w;
        FLAWLENS_RETURN_IF_ERROR(op->Add(
            "xnn_create_convolution2d_nhwc_f32", st, x,
            [h, w](xnn_operator_t o, const float* const* i, float* y, float*, pthreadpool_t p) {
              return xnn_setup_convolution2d_nhwc_f32(o, 1, h, w, i[0], y, p);
            }));
        FLAWLENS_RETURN_IF_ERROR(FoldedOrSteps(op.get(), node, out));
        break;
      }
      case OpType::kDense: {
        op = MakeOp(spec, "dense_f32__xnnpack");
        float lo, hi;
        FusedRange(node.activation, &lo, &hi);
        const size_t in_flat = static_cast<size_t>(in.elements());
        const size_t out_c = static_cast<size_t>(node.out_channels);
        xnn_operator_t x = nullptr;
        xnn_status st = xnn_create_fully_connected_nc_f32(
            in_flat, out_c, in_flat, out_c, node.weight.data, node.bias.data, lo, hi, 0, &x);
        FLAWLENS_RETURN_IF_ERROR(op->Add(
            "xnn_create_fully_connected_nc_f32", st, x,
            [](xnn_operator_t o, const float* const* i, float* y, float*, pthreadpool_t p) {
              return xnn_setup_fully_connected_nc_f32(o, 1, i[0], y, p);
            }));
        FLAWLENS_RETURN_IF_ERROR(FoldedOrSteps(op.get(), node, out));
        break;
      }
      case OpType::kAdd: {
        op = MakeOp(spec, "add_f32__xnnpack");
        float lo, hi;
        FusedRange(node.activation, &lo, &hi);
        xnn_operator_t x = nullptr;
        xnn_status st = xnn_create_add_nd_f32(lo, hi, 0, &x);
        const size_t n = static_cast<size_t>(out.elements());
        FLAWLENS_RETURN_IF_ERROR(op->Add(
            "xnn_create_add_nd_f32", st, x,
            [n](xnn_operator_t o, const float* const* i, float* y, float*, pthreadpool_t p) {
              const size_t dims[1] = {n};
              return xnn_setup_add_nd_f32(o, 1, dims, 1, dims, i[0], i[1], y, p);
            }));
        FLAWLENS_RETURN_IF_ERROR(FoldedOrSteps(op.get(), node, out));
        break;
      }
      case OpType::kMul: {
        FLAWLENS_ASSIGN_OR_RETURN(op, CreateMul(spec));
        break;
      }
      case OpType::kActivation: {
        op = MakeOp(spec, std::string(ActivationName(node.activation)) + "_f32__xnnpack");
        FLAWLENS_RETURN_IF_ERROR(
            AddActivationSteps(op.get(), node.activation, node.alpha, out, /*standalone=*/true));
        break;
      }
      case OpType::kMaxPool2d:
      case OpType::kAvgPool2d: {
        const bool max = node.op == OpType::kMaxPool2d;
        const char* pool = max ? "maxpool2d" : "avgpool2d";
        const bool padded =
            node.pad_top != 0 || node.pad_left != 0 || node.pad_bottom != 0 || node.pad_right != 0;
        if (!max && padded && node.count_include_pad)
          return MakeError(ErrorCode::kUnsupported,
                           "xnnpack: avgpool2d with padding and count_include_pad=true "
                           "(XNNPACK excludes padding from the divisor)");
        FLAWLENS_RETURN_IF_ERROR(
            CheckIndirection(pool, out, int64_t{node.kernel_h} * node.kernel_w));
        op = MakeOp(spec, WindowName(pool, node));
        FLAWLENS_RETURN_IF_ERROR(AddPoolingStep(op.get(), node, in, max));
        break;
      }
      case OpType::kGlobalAvgPool: {
        op = MakeOp(spec, "global_avgpool_f32__xnnpack");
        xnn_operator_t x = nullptr;
        xnn_status st =
            xnn_create_global_average_pooling_nwc_f32(in.c, in.c, in.c, -kInf, kInf, 0, &x);
        const size_t width = static_cast<size_t>(in.h) * static_cast<size_t>(in.w);
        FLAWLENS_RETURN_IF_ERROR(op->Add(
            "xnn_create_global_average_pooling_nwc_f32", st, x,
            [width](xnn_operator_t o, const float* const* i, float* y, float*, pthreadpool_t p) {
              return xnn_setup_global_average_pooling_nwc_f32(o, 1, width, i[0], y, p);
            }));
        break;
      }
      case OpType::kUpsample: {
        if (node.upsample_mode != UpsampleMode::kBilinear)
          return MakeError(ErrorCode::kUnsupported, "xnnpack: upsample nearest not available");
        // 4 source pointers + 2 packed weights per output pixel.
        FLAWLENS_RETURN_IF_ERROR(CheckIndirection("upsample", out, 5));
        op = MakeOp(spec, "upsample_bilinear_f32__xnnpack");
        xnn_operator_t x = nullptr;
        // flags 0: half-pixel centres, align_corners=false.
        xnn_status st = xnn_create_resize_bilinear2d_nhwc_f32(in.c, in.c, in.c, 0, &x);
        const size_t ih = in.h, iw = in.w, oh = out.h, ow = out.w;
        FLAWLENS_RETURN_IF_ERROR(op->Add(
            "xnn_create_resize_bilinear2d_nhwc_f32", st, x,
            [ih, iw, oh, ow](xnn_operator_t o, const float* const* i, float* y, float*,
                             pthreadpool_t p) {
              return xnn_setup_resize_bilinear2d_nhwc_f32(o, 1, ih, iw, oh, ow, i[0], y, p);
            }));
        break;
      }
      case OpType::kConcat: {
        op = MakeOp(spec, "concat_x32__xnnpack");
        const size_t pixels = static_cast<size_t>(out.h) * static_cast<size_t>(out.w);
        const size_t total_c = static_cast<size_t>(out.c);
        size_t offset = 0;
        for (size_t k = 0; k < spec.input_shapes.size(); ++k) {
          const size_t c = static_cast<size_t>(spec.input_shapes[k].c);
          xnn_operator_t x = nullptr;
          xnn_status st = xnn_create_copy_nc_x32(c, c, total_c, 0, &x);
          FLAWLENS_RETURN_IF_ERROR(op->Add(
              "xnn_create_copy_nc_x32", st, x,
              [pixels, k, offset](xnn_operator_t o, const float* const* i, float* y, float*,
                                  pthreadpool_t p) {
                return xnn_setup_copy_nc_x32(o, pixels, i[k], y + offset, p);
              }));
          offset += c;
        }
        break;
      }
      default:
        return MakeError(ErrorCode::kUnsupported, "xnnpack: op %s not available",
                         OpTypeName(node.op));
    }
    return std::unique_ptr<OpImpl>(std::move(op));
  }

 private:
  // in1 of in0's shape, or 1 x 1 x C broadcast over the pixels.
  Result<std::unique_ptr<XnnpackOp>> CreateMul(const OpSpec& spec) {
    const Node& node = spec.node;
    const Shape& in = spec.input_shapes[0];
    const Shape& out = spec.output_shape;
    std::unique_ptr<XnnpackOp> op;
    const Shape& in_b = spec.input_shapes[1];
    const bool broadcast = in_b != in;
    op = MakeOp(spec, broadcast ? "mul_bcast_f32__xnnpack" : "mul_f32__xnnpack");
    float lo, hi;
    FusedRange(node.activation, &lo, &hi);
    xnn_operator_t x = nullptr;
    xnn_status st = xnn_create_multiply_nd_f32(lo, hi, 0, &x);
    const size_t pixels = static_cast<size_t>(in.h) * static_cast<size_t>(in.w);
    const size_t c = static_cast<size_t>(in.c);
    FLAWLENS_RETURN_IF_ERROR(op->Add(
        "xnn_create_multiply_nd_f32", st, x,
        [pixels, c, broadcast](xnn_operator_t o, const float* const* i, float* y, float*,
                               pthreadpool_t p) {
          const size_t a_dims[2] = {pixels, c};
          const size_t b_dims[2] = {broadcast ? 1 : pixels, c};
          return xnn_setup_multiply_nd_f32(o, 2, a_dims, 2, b_dims, i[0], i[1], y, p);
        }));
    FLAWLENS_RETURN_IF_ERROR(FoldedOrSteps(op.get(), node, out));
    return op;
  }

  std::unique_ptr<XnnpackOp> MakeOp(const OpSpec& spec, std::string name) {
    return std::make_unique<XnnpackOp>(pool_, static_cast<int>(spec.input_shapes.size()),
                                       static_cast<size_t>(spec.output_shape.elements()),
                                       std::move(name));
  }

  // none/relu/relu6 are folded into the main operator's output range; the
  // others run in place on the output.
  static Status FoldedOrSteps(XnnpackOp* op, const Node& node, const Shape& out) {
    if (FoldsIntoRange(node.activation)) return Status::Ok();
    return AddActivationSteps(op, node.activation, node.alpha, out, /*standalone=*/false);
  }

  std::shared_ptr<Threadpool> pool_;
};

}  // namespace

bool HaveXnnpack() { return InitXnnpack(); }

std::unique_ptr<Backend> MakeXnnpackBackend(int threads) {
  if (!InitXnnpack()) return nullptr;
  return std::make_unique<XnnpackBackend>(threads);
}

}  // namespace flawlens

#else  // !FLAWLENS_HAVE_XNNPACK

namespace flawlens {

bool HaveXnnpack() { return false; }
std::unique_ptr<Backend> MakeXnnpackBackend(int /*threads*/) { return nullptr; }

}  // namespace flawlens

#endif
