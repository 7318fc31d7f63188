// The ONNX graph input and the operators onnx_import_ops.cc does not map -> engine
// nodes (onnx_import_internal.h).
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "core/limits.h"
#include "onnx/onnx_import_internal.h"

namespace flawlens::onnx_import::internal {

Status Importer::SetInput(const std::string& name) {
  if (!input_name_.empty()) {
    return Error(ErrorCode::kUnsupported, "the outputs depend on two graph inputs, '" +
                                              Printable(input_name_) + "' and '" + Printable(name) +
                                              "' (a backbone has one image input)");
  }
  input_name_ = name;
  const onnx::ValueInfoProto& vi = *graph_inputs_.at(name);
  const std::string where = "graph input '" + Printable(name) + "'";
  if (!vi.type().has_tensor_type() ||
      vi.type().tensor_type().elem_type() != onnx::TensorProto_DataType_FLOAT) {
    return Error(ErrorCode::kUnsupported, where + " is not a float32 tensor");
  }
  const onnx::TensorShapeProto& shape = vi.type().tensor_type().shape();
  if (shape.dim_size() != 4)
    return Error(ErrorCode::kUnsupported,
                 where + " has rank " + std::to_string(shape.dim_size()) + " (an NCHW image: 4)");
  auto dim = [&](int k) -> int64_t {
    return shape.dim(k).has_dim_value() ? shape.dim(k).dim_value() : -1;
  };
  if (dim(0) != -1 && dim(0) != 1)
    return Error(ErrorCode::kUnsupported,
                 where + " has batch " + std::to_string(dim(0)) + " (the engine runs batch 1)");
  const int64_t c = dim(1);
  if (c != 1 && c != 3) {
    return Error(ErrorCode::kUnsupported, where + " has " +
                                              (c < 0 ? std::string("dynamic") : std::to_string(c)) +
                                              " channels (an image: 1 or 3)");
  }
  int h = options_.input_h, w = options_.input_w;
  const int64_t gh = dim(2), gw = dim(3);
  if (h == 0) {
    h = gh > 0 ? static_cast<int>(std::min<int64_t>(gh, kMaxModelInputSide + 1)) : 256;
    w = gw > 0 ? static_cast<int>(std::min<int64_t>(gw, kMaxModelInputSide + 1)) : 256;
  } else if ((gh > 0 && gh != h) || (gw > 0 && gw != w)) {
    return Error(ErrorCode::kInvalidArgument,
                 where + " is fixed at " + std::to_string(gw) + "x" + std::to_string(gh) +
                     ", not the --input " + std::to_string(w) + "x" + std::to_string(h) +
                     " (export with dynamic H and W, or import at the fixed size)");
  }
  if (h < 1 || w < 1 || h > kMaxModelInputSide || w > kMaxModelInputSide) {
    return Error(ErrorCode::kLimitExceeded, where + ": the input size must be in [1, " +
                                                std::to_string(kMaxModelInputSide) + "]");
  }
  ValueInfo& info = graph_.infos[0];
  info.h = h;
  info.w = w;
  info.c = static_cast<int>(c);
  graph_.values[name] = 0;
  return Status::Ok();
}

Status Importer::Emit(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  const std::string& op = n.op_type();
  if (!n.domain().empty() && n.domain() != "ai.onnx")
    return Unsupported(id, "domain '" + Printable(n.domain()) + "'");
  if (n.output_size() < 1 || n.output(0).empty())
    return Fail(id, ErrorCode::kBadGraph, "the node has no output");
  if (absorbed_.count(id) || op == "Constant") return Status::Ok();
  // Graph inputs it reads become the network input.
  for (const std::string& in : n.input()) {
    const std::string r = Resolve(in);
    if (!in.empty() && graph_inputs_.count(r) && !graph_.values.count(r))
      FLAWLENS_RETURN_IF_ERROR(SetInput(r));
  }
  if (op == "Identity") return CheckAttributes(id, {});
  if (op == "Dropout") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"seed", "ratio", "is_test"}));
    int64_t is_test = 0;
    FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "is_test", 0, &is_test));
    if (opset_ < 7 && !is_test) return Unsupported(id, "training mode (is_test = 0, opset < 7)");
    if (n.input_size() >= 3 && !n.input(2).empty()) {
      const std::string t = Resolve(n.input(2));
      if (!IsConst(t)) return Unsupported(id, "training_mode is not a constant");
      Result<const Constant*> c = ConstOf(t);
      if (!c.ok()) return c.status();
      if ((*c)->elements != 1 || ((*c)->is_int ? (*c)->i[0] != 0 : (*c)->f[0] != 0.0f))
        return Unsupported(id, "training_mode is on");
    }
    return Status::Ok();
  }
  const std::string& out = n.output(0);
  auto pattern = patterns_.find(id);
  if (pattern != patterns_.end()) {
    const int v = graph_.ValueOf(pattern->second.x);
    if (v < 0)
      return Unsupported(id, "its input '" + Printable(pattern->second.x) +
                                 "' is not a tensor this importer computes");
    const bool silu = pattern->second.kind == PatternKind::kSilu;
    graph_.values[out] =
        ApplyActivation(id, v, pattern->second.x, silu ? Activation::kSilu : Activation::kHardSwish,
                        silu ? 0.0f : pattern->second.alpha);
    return Status::Ok();
  }
  if (op == "Conv") return EmitConv(id);
  if (op == "MaxPool") return EmitPool(id, true);
  if (op == "AveragePool") return EmitPool(id, false);
  if (op == "Resize" || op == "Upsample") return EmitResize(id);
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return EmitBinary(id);
  if (op == "Clip") return EmitClip(id);

  // One tensor input from here on.
  static const std::set<std::string> kUnary = {
      "Relu",      "LeakyRelu",          "Sigmoid",       "HardSigmoid",
      "HardSwish", "GlobalAveragePool",  "GlobalMaxPool", "ReduceMean",
      "Flatten",   "BatchNormalization", "Concat"};
  if (!kUnary.count(op)) {
    return Unsupported(id, std::string("import-onnx maps ") + kSupportedOps);
  }
  if (op == "Concat") {
    int64_t axis = 0;
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"axis"}));
    FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "axis", 1, &axis));
    if (n.input_size() < 1) return Fail(id, ErrorCode::kBadGraph, "Concat needs inputs");
    std::vector<int> vals;
    ValueInfo info;
    for (const std::string& in : n.input()) {
      const std::string r = Resolve(in);
      const int v = graph_.ValueOf(r);
      if (v < 0 || IsConst(r))
        return Unsupported(
            id, "its input '" + Printable(r) + "' is not a tensor this importer computes");
      const ValueInfo& vi = graph_.infos[v];
      if (vals.empty()) {
        info = vi;
        info.c = 0;
      }
      if (vi.rank != info.rank || vi.h != info.h || vi.w != info.w)
        return Unsupported(id, "inputs of different height / width / rank");
      if (axis != 1 && axis != 1 - vi.rank)
        return Unsupported(id, "axis " + std::to_string(axis) + " (only the channel axis 1)");
      info.c += vi.c;
      info.stride_h = std::max(info.stride_h, vi.stride_h);
      info.stride_w = std::max(info.stride_w, vi.stride_w);
      vals.push_back(v);
    }
    if (info.c > kMaxChannels)
      return Fail(id, ErrorCode::kLimitExceeded,
                  "more than " + std::to_string(kMaxChannels) + " channels");
    if (vals.size() == 1) {
      graph_.values[out] = vals[0];
      return Status::Ok();
    }
    EngineNode e;
    e.name = NodeName(n);
    e.op = EngineOp::kConcat;
    e.inputs = vals;
    e.owner = out;
    graph_.values[out] = graph_.AddNode(std::move(e), info);
    return Status::Ok();
  }
  if (n.input_size() < 1) return Fail(id, ErrorCode::kBadGraph, "the node has no input");
  const std::string x = Resolve(n.input(0));
  const int v = graph_.ValueOf(x);
  if (v < 0 || IsConst(x))
    return Unsupported(id,
                       "its input '" + Printable(x) + "' is not a tensor this importer computes");
  const ValueInfo in = graph_.infos[v];
  if (op == "Relu" || op == "Sigmoid") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {}));
    const Activation act = op == "Relu" ? Activation::kRelu : Activation::kSigmoid;
    graph_.values[out] = ApplyActivation(id, v, x, act, 0.0f);
    return Status::Ok();
  }
  if (op == "LeakyRelu") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"alpha"}));
    float alpha = 0.01f;
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "alpha", 0.01f, &alpha));
    if (!std::isfinite(alpha)) return Fail(id, ErrorCode::kNonFinite, "alpha is not finite");
    graph_.values[out] = ApplyActivation(id, v, x, Activation::kLeakyRelu, alpha);
    return Status::Ok();
  }
  if (op == "HardSwish") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {}));
    graph_.values[out] = ApplyActivation(id, v, x, Activation::kHardSwish, 1.0f / 6.0f);
    return Status::Ok();
  }
  if (op == "HardSigmoid") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"alpha", "beta"}));
    float alpha = 0.2f, beta = 0.5f;
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "alpha", 0.2f, &alpha));
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "beta", 0.5f, &beta));
    if (!std::isfinite(alpha) || !std::isfinite(beta) || alpha == 0.0f)
      return Fail(id, ErrorCode::kBadGraph, "alpha / beta must be finite, alpha non-zero");
    if (std::fabs(alpha - 1.0f / 6.0f) < 1e-6f && std::fabs(beta - 0.5f) < 1e-6f) {
      graph_.values[out] = ApplyActivation(id, v, x, Activation::kHardSigmoid, alpha);
      return Status::Ok();
    }
    // clamp(alpha x + beta, 0, 1) = relu6(z + 3) / 6 with z = 6 alpha x + 6 beta - 3.
    const std::string pre = out + "/affine";
    graph_.consumers[pre] = 1;
    FLAWLENS_RETURN_IF_ERROR(EmitAffine(id, v, x, {6.0f * alpha}, {6.0f * beta - 3.0f}));
    const int z = graph_.values[out];
    graph_.nodes[z - 1].owner = pre;
    graph_.values[out] = ApplyActivation(id, z, pre, Activation::kHardSigmoid, 1.0f / 6.0f);
    return Status::Ok();
  }
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {}));
    if (in.rank != 4) return Unsupported(id, "its input is not a 4-D NCHW tensor");
    EngineNode e;
    e.name = NodeName(n);
    e.inputs = {v};
    e.owner = out;
    if (op == "GlobalAveragePool") {
      e.op = EngineOp::kGlobalAvgPool;
    } else {
      if (in.h > kMaxKernel || in.w > kMaxKernel)
        return Unsupported(
            id, "a global max over more than " + std::to_string(kMaxKernel) + " rows or columns");
      e.op = EngineOp::kMaxPool2d;
      e.kh = in.h;
      e.kw = in.w;
    }
    ValueInfo info = in;
    info.h = info.w = 1;
    graph_.values[out] = graph_.AddNode(std::move(e), info);
    return Status::Ok();
  }
  if (op == "ReduceMean") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"axes", "keepdims"}));
    if (in.rank != 4) return Unsupported(id, "its input is not a 4-D NCHW tensor");
    if (n.input_size() > 1) return Unsupported(id, "axes given as an input (opset 18)");
    std::vector<int64_t> axes;
    int64_t keep = 1;
    FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "axes", &axes));
    FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "keepdims", 1, &keep));
    std::set<int64_t> set;
    for (int64_t a : axes) set.insert(a < 0 ? a + 4 : a);
    if (set != std::set<int64_t>{2, 3})
      return Unsupported(id, "only a mean over H and W (axes [2, 3]) maps to global pooling");
    EngineNode e;
    e.name = NodeName(n);
    e.op = EngineOp::kGlobalAvgPool;
    e.inputs = {v};
    e.owner = out;
    ValueInfo info = in;
    info.h = info.w = 1;
    if (!keep) info.rank = 2;
    graph_.values[out] = graph_.AddNode(std::move(e), info);
    return Status::Ok();
  }
  if (op == "Flatten") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"axis"}));
    int64_t axis = 1;
    FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "axis", 1, &axis));
    if (axis < 0) axis += in.rank;
    if (axis != 1 || (in.h != 1 || in.w != 1)) {
      return Unsupported(id,
                         "only Flatten(axis=1) of a Cx1x1 map (the engine's NHWC layout "
                         "orders a larger map differently)");
    }
    ValueInfo info = in;
    info.rank = 2;
    EngineNode e;  // the engine value is the same; a 1x1 average keeps it
    e.name = NodeName(n);
    e.op = EngineOp::kGlobalAvgPool;
    e.inputs = {v};
    e.owner = out;
    graph_.values[out] = graph_.AddNode(std::move(e), info);
    return Status::Ok();
  }
  // BatchNormalization (inference): per-channel affine.
  FLAWLENS_RETURN_IF_ERROR(
      CheckAttributes(id, {"epsilon", "momentum", "training_mode", "spatial"}));
  int64_t training = 0;
  FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "training_mode", 0, &training));
  if (opset_ < 7) return Unsupported(id, "BatchNormalization before opset 7 (training by default)");
  if (training) return Unsupported(id, "training_mode is on");
  if (n.input_size() != 5) return Fail(id, ErrorCode::kBadGraph, "expected 5 inputs");
  for (int k = 1; k < n.output_size(); ++k) {
    if (!n.output(k).empty() && graph_.consumers.count(n.output(k)))
      return Unsupported(id, "its running statistics outputs are used");
  }
  float eps = 1e-5f;
  FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "epsilon", 1e-5f, &eps));
  std::vector<float> p[4];  // scale, B, mean, var
  for (int k = 0; k < 4; ++k) {
    const std::string name = Resolve(n.input(k + 1));
    if (!IsConst(name))
      return Unsupported(id, "its parameter '" + Printable(name) + "' is not a constant");
    Result<const Constant*> c = ConstOf(name);
    if (!c.ok()) return c.status();
    if ((*c)->is_int || (*c)->elements != in.c || (*c)->dims.size() != 1)
      return Fail(
          id, ErrorCode::kBadShape,
          "parameter '" + Printable(name) + "' must hold " + std::to_string(in.c) + " floats");
    p[k] = (*c)->f;
  }
  std::vector<float> scale(in.c), shift(in.c);
  for (int c = 0; c < in.c; ++c) {
    const double inv = 1.0 / std::sqrt(static_cast<double>(p[3][c]) + eps);
    if (!std::isfinite(inv))
      return Fail(id, ErrorCode::kNonFinite, "variance + epsilon is not positive");
    scale[c] = static_cast<float>(p[0][c] * inv);
    shift[c] = static_cast<float>(p[1][c] - p[2][c] * p[0][c] * inv);
  }
  return EmitAffine(id, v, x, std::move(scale), std::move(shift));
}

}  // namespace flawlens::onnx_import::internal
