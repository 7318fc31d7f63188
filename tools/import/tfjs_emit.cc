// TF nodes -> engine nodes on the importers' shared engine graph (emit.h);
// the card's TF.js origin (tfjs_internal.h).
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "import/tfjs_internal.h"

namespace flawlens::tfjs::internal {

int Importer::ApplyActivation(const TfNode& n, int v, const std::string& x, Activation act,
                              float alpha) {
  return graph_.ApplyActivation(v, x, n.name, n.name, act, alpha, /*conv_only=*/true);
}

// x * scale + shift with a scalar or per-channel constant: folded into the
// producing convolution, else a 1x1 depthwise convolution.
Status Importer::EmitAffine(const TfNode& n, int v, const std::string& x, const Constant& c,
                            bool multiply, bool negate) {
  const int ch = graph_.infos[v].c;
  const bool per_channel =
      c.elements == ch && !c.shape.empty() && c.shape.back() == ch &&
      std::all_of(c.shape.begin(), c.shape.end() - 1, [](int64_t d) { return d == 1; });
  if (c.is_int || !(c.elements == 1 || per_channel)) {
    return Unsupported(
        n, "the constant operand must be a float scalar or have one value per channel (" +
               std::to_string(ch) + ")");
  }
  std::vector<float> k(c.f.begin(), c.f.begin() + c.elements);
  if (negate)
    for (float& value : k) value = -value;
  std::vector<float> none;
  graph_.Affine(v, x, n.name, n.name, multiply ? std::move(k) : none,
                multiply ? none : std::move(k));
  return Status::Ok();
}

namespace {

// TF window geometry along one axis; false when the output would be empty.
bool Window(int in, int k, int s, int d, const std::string& padding, int explicit_before,
            int explicit_after, int* out, int* before, int* after) {
  const int64_t eff = int64_t{d} * (k - 1) + 1;
  if (padding == "SAME") {
    const int64_t o = (int64_t{in} + s - 1) / s;
    const int64_t total = std::max<int64_t>((o - 1) * s + eff - in, 0);
    *before = static_cast<int>(total / 2);
    *after = static_cast<int>(total - total / 2);
    *out = static_cast<int>(o);
  } else {
    *before = padding == "EXPLICIT" ? explicit_before : 0;
    *after = padding == "EXPLICIT" ? explicit_after : 0;
    const int64_t span = int64_t{in} + *before + *after - eff;
    if (span < 0) return false;
    *out = static_cast<int>(span / s + 1);
  }
  return *out >= 1;
}

}  // namespace

Status Importer::EmitConv(const TfNode& n, bool depthwise, bool fused) {
  const size_t want = fused ? 3 : 2;
  if (n.inputs.size() != want) {
    return Unsupported(n, "expected " + std::to_string(want) + " inputs, found " +
                              std::to_string(n.inputs.size()));
  }
  const std::string x = Resolve(n.inputs[0].node);
  const int v = graph_.ValueOf(x);
  if (v < 0) return Unsupported(n, "its input '" + x + "' is not a tensor this importer computes");
  const Constant* w = ConstOf(Resolve(n.inputs[1].node));
  if (!w || w->is_int || w->shape.size() != 4 ||
      std::any_of(w->shape.begin(), w->shape.end(), [](int64_t d) { return d < 1; })) {
    return Unsupported(n, "the filter must be a float constant of shape [kh, kw, in, out]");
  }
  std::string format = "NHWC";
  AttrString(n, "data_format", &format);
  if (format != "NHWC") return Unsupported(n, "data_format '" + format + "' (only NHWC)");
  std::vector<int64_t> strides{1, 1, 1, 1}, dilations{1, 1, 1, 1}, explicit_pads;
  if (Attr(n, "strides") && (!AttrInts(n, "strides", &strides) || strides.size() != 4)) {
    return Fail(n, ErrorCode::kBadGraph, "'strides' is not a list of 4 integers");
  }
  if (Attr(n, "dilations") && (!AttrInts(n, "dilations", &dilations) || dilations.size() != 4)) {
    return Fail(n, ErrorCode::kBadGraph, "'dilations' is not a list of 4 integers");
  }
  if (strides[0] != 1 || strides[3] != 1 || dilations[0] != 1 || dilations[3] != 1) {
    return Unsupported(n, "strides / dilations over batch or channels");
  }
  for (int a = 1; a <= 2; ++a) {
    if (strides[a] < 1 || strides[a] > kMaxStride || dilations[a] < 1 ||
        dilations[a] > kMaxDilation) {
      return Fail(n, ErrorCode::kLimitExceeded,
                  "stride / dilation out of [1, " + std::to_string(kMaxStride) + "]");
    }
  }
  std::string padding;
  if (!AttrString(n, "padding", &padding)) padding = "VALID";
  if (padding == "EXPLICIT") {
    if (!AttrInts(n, "explicit_paddings", &explicit_pads) || explicit_pads.size() != 8 ||
        std::any_of(explicit_pads.begin(), explicit_pads.end(),
                    [](int64_t p) { return p < 0 || p > kMaxPad; })) {
      return Fail(n, ErrorCode::kBadGraph,
                  "'explicit_paddings' is not 8 integers in [0, " + std::to_string(kMaxPad) + "]");
    }
  } else if (padding != "SAME" && padding != "VALID") {
    return Unsupported(n, "padding '" + padding + "'");
  }
  if (w->shape[0] > kMaxKernel || w->shape[1] > kMaxKernel) {
    return Fail(n, ErrorCode::kLimitExceeded, "kernel above " + std::to_string(kMaxKernel));
  }
  const ValueInfo& in = graph_.infos[v];
  const int kh = static_cast<int>(w->shape[0]), kw = static_cast<int>(w->shape[1]);
  const int64_t wi = w->shape[2], wo = w->shape[3];
  EngineNode e;
  e.name = n.name;
  e.op = EngineOp::kConv2d;
  e.inputs = {v};
  e.kh = kh;
  e.kw = kw;
  e.sh = static_cast<int>(strides[1]);
  e.sw = static_cast<int>(strides[2]);
  e.dh = static_cast<int>(dilations[1]);
  e.dw = static_cast<int>(dilations[2]);
  if (depthwise) {
    if (wi != in.c) {
      return Fail(n, ErrorCode::kBadShape,
                  "the filter has " + std::to_string(wi) + " input channels, the input " +
                      std::to_string(in.c));
    }
    const int64_t out_c = wi * wo;
    if (out_c > kMaxChannels)
      return Fail(n, ErrorCode::kLimitExceeded,
                  "more than " + std::to_string(kMaxChannels) + " channels");
    e.groups = in.c;
    e.out_c = static_cast<int>(out_c);
    e.weight.resize(static_cast<size_t>(out_c) * kh * kw);
    // TF [kh][kw][c][m] -> [c * m + mm][kh][kw][1].
    for (int y = 0; y < kh; ++y)
      for (int xx = 0; xx < kw; ++xx)
        for (int64_t c = 0; c < wi; ++c)
          for (int64_t m = 0; m < wo; ++m)
            e.weight[((c * wo + m) * kh + y) * kw + xx] = w->f[((y * kw + xx) * wi + c) * wo + m];
  } else {
    if (in.c % wi != 0 || wo % (in.c / wi) != 0) {
      return Fail(n, ErrorCode::kBadShape,
                  "the filter has " + std::to_string(wi) + " input channels, the input " +
                      std::to_string(in.c));
    }
    if (wo > kMaxChannels)
      return Fail(n, ErrorCode::kLimitExceeded,
                  "more than " + std::to_string(kMaxChannels) + " channels");
    e.groups = static_cast<int>(in.c / wi);
    e.out_c = static_cast<int>(wo);
    e.weight.resize(static_cast<size_t>(wo) * kh * kw * wi);
    // TF HWIO -> OHWI.
    for (int y = 0; y < kh; ++y)
      for (int xx = 0; xx < kw; ++xx)
        for (int64_t i = 0; i < wi; ++i)
          for (int64_t o = 0; o < wo; ++o)
            e.weight[((o * kh + y) * kw + xx) * wi + i] = w->f[((y * kw + xx) * wi + i) * wo + o];
  }
  ValueInfo out;
  out.c = e.out_c;
  const int eph = explicit_pads.size() == 8 ? static_cast<int>(explicit_pads[2]) : 0;
  const int epb = explicit_pads.size() == 8 ? static_cast<int>(explicit_pads[3]) : 0;
  const int epl = explicit_pads.size() == 8 ? static_cast<int>(explicit_pads[4]) : 0;
  const int epr = explicit_pads.size() == 8 ? static_cast<int>(explicit_pads[5]) : 0;
  if (!Window(in.h, kh, e.sh, e.dh, padding, eph, epb, &out.h, &e.pt, &e.pb) ||
      !Window(in.w, kw, e.sw, e.dw, padding, epl, epr, &out.w, &e.pl, &e.pr)) {
    return Fail(n, ErrorCode::kBadShape,
                "the input " + std::to_string(in.w) + "x" + std::to_string(in.h) +
                    " is too small for its window; choose a larger --input");
  }
  out.stride_h = in.stride_h * e.sh;
  out.stride_w = in.stride_w * e.sw;
  if (fused) {
    std::vector<std::string> ops = AttrStrings(n, "fused_ops");
    if (ops.empty() || ops[0] != "BiasAdd") {
      return Unsupported(n, "fused_ops must start with BiasAdd (found '" +
                                (ops.empty() ? std::string() : ops[0]) + "')");
    }
    const Constant* b = ConstOf(Resolve(n.inputs[2].node));
    if (!b || b->is_int || b->elements != e.out_c) {
      return Fail(n, ErrorCode::kBadShape,
                  "the bias must be a float constant of " + std::to_string(e.out_c) + " values");
    }
    e.bias = b->f;
    if (ops.size() > 2) return Unsupported(n, "more than one fused op after BiasAdd");
    if (ops.size() == 2) {
      static const std::map<std::string, Activation> kActs = {
          {"Relu", Activation::kRelu},
          {"Relu6", Activation::kRelu6},
          {"LeakyRelu", Activation::kLeakyRelu},
          {"Sigmoid", Activation::kSigmoid}};
      auto act = kActs.find(ops[1]);
      if (act == kActs.end()) return Unsupported(n, "fused op '" + ops[1] + "'");
      e.activation = act->second;
      if (ops[1] == "LeakyRelu") e.alpha = AttrFloat(n, "leakyrelu_alpha", 0.2f);
    }
  }
  e.owner = n.name;
  graph_.values[n.name] = graph_.AddNode(std::move(e), out);
  return Status::Ok();
}

Status Importer::Emit(const TfNode& n) {
  const std::string& op = n.op;
  if (op == "Identity" || op == "StopGradient" || absorbed_.count(n.name)) return Status::Ok();
  for (const TfInput& in : n.inputs) {
    if (in.index != 0)
      return Unsupported(n,
                         "it reads output " + std::to_string(in.index) + " of '" + in.node + "'");
  }
  if (op == "Placeholder") {
    if (have_input_) return Unsupported(n, "a second input placeholder");
    have_input_ = true;
    int c = 3;
    const json* shape = Attr(n, "shape");
    if (shape && shape->is_object() && shape->contains("shape")) {
      const json& s = (*shape)["shape"];
      if (s.is_object() && s.contains("dim") && s["dim"].is_array() && s["dim"].size() == 4) {
        const json& d = s["dim"][3];
        if (d.is_object() && d.contains("size")) {
          const json& size = d["size"];
          if (size.is_string())
            c = std::atoi(size.get<std::string>().c_str());
          else if (size.is_number_integer())
            c = size.get<int>();
        }
      } else if (s.is_object() && s.contains("dim")) {
        return Unsupported(n, "the input must be a 4-D NHWC tensor");
      }
    }
    if (c == -1) c = 3;
    if (c != 1 && c != 3)
      return Unsupported(n, "the input has " + std::to_string(c) + " channels (1 or 3)");
    ValueInfo& info = graph_.infos[0];
    info.h = options_.input_h;
    info.w = options_.input_w;
    info.c = c;
    graph_.values[n.name] = 0;
    return Status::Ok();
  }
  if (op == "Const") return Status::Ok();
  if (op == "_FusedConv2D") return EmitConv(n, false, true);
  if (op == "Conv2D") return EmitConv(n, false, false);
  if (op == "FusedDepthwiseConv2dNative") return EmitConv(n, true, true);
  if (op == "DepthwiseConv2dNative") return EmitConv(n, true, false);

  auto pattern = patterns_.find(n.name);
  if (pattern != patterns_.end()) {
    const int v = graph_.ValueOf(pattern->second.x);
    if (v < 0)
      return Unsupported(
          n, "its input '" + pattern->second.x + "' is not a tensor this importer computes");
    const Activation act = pattern->second.kind == PatternKind::kHardSwish
                               ? Activation::kHardSwish
                               : Activation::kHardSigmoid;
    graph_.values[n.name] = ApplyActivation(n, v, pattern->second.x, act, pattern->second.alpha);
    return Status::Ok();
  }

  // Operands: tensors (engine values) or constants.
  std::vector<std::string> names;
  std::vector<int> vals;
  std::vector<const Constant*> cs;
  for (const TfInput& in : n.inputs) {
    names.push_back(Resolve(in.node));
    cs.push_back(ConstOf(names.back()));
    vals.push_back(cs.back() ? -1 : graph_.ValueOf(names.back()));
    if (!cs.back() && vals.back() < 0) {
      return Unsupported(n,
                         "its input '" + names.back() + "' is not a tensor this importer computes");
    }
  }
  if (op == "Relu" || op == "Relu6" || op == "Sigmoid" || op == "LeakyRelu") {
    if (vals.size() != 1 || vals[0] < 0) return Unsupported(n, "expected one tensor input");
    const Activation act = op == "Relu"      ? Activation::kRelu
                           : op == "Relu6"   ? Activation::kRelu6
                           : op == "Sigmoid" ? Activation::kSigmoid
                                             : Activation::kLeakyRelu;
    const float alpha = op == "LeakyRelu" ? AttrFloat(n, "alpha", 0.2f) : 0.0f;
    graph_.values[n.name] = ApplyActivation(n, vals[0], names[0], act, alpha);
    return Status::Ok();
  }
  if (op == "Add" || op == "AddV2" || op == "BiasAdd" || op == "Sub" || op == "Mul") {
    if (vals.size() != 2) return Unsupported(n, "expected two inputs");
    const bool multiply = op == "Mul";
    if (vals[0] >= 0 && vals[1] >= 0) {
      if (op == "Sub" || op == "BiasAdd") return Unsupported(n, "two tensor operands");
      const ValueInfo& a = graph_.infos[vals[0]];
      const ValueInfo& b = graph_.infos[vals[1]];
      int first = vals[0], second = vals[1];
      const bool same = a.h == b.h && a.w == b.w && a.c == b.c;
      if (!same) {
        const bool b_gate = multiply && b.h == 1 && b.w == 1 && b.c == a.c;
        const bool a_gate = multiply && a.h == 1 && a.w == 1 && a.c == b.c;
        if (a_gate) std::swap(first, second);
        if (!a_gate && !b_gate) {
          return Unsupported(n, "operand shapes " + std::to_string(a.h) + "x" +
                                    std::to_string(a.w) + "x" + std::to_string(a.c) + " and " +
                                    std::to_string(b.h) + "x" + std::to_string(b.w) + "x" +
                                    std::to_string(b.c) + " (h x w x c) do not match" +
                                    (multiply ? " and neither is a 1x1xC gate" : ""));
        }
      }
      EngineNode e;
      e.name = n.name;
      e.op = multiply ? EngineOp::kMul : EngineOp::kAdd;
      e.inputs = {first, second};
      e.owner = n.name;
      ValueInfo info = graph_.infos[first];
      info.stride_h = std::max(graph_.infos[first].stride_h, graph_.infos[second].stride_h);
      info.stride_w = std::max(graph_.infos[first].stride_w, graph_.infos[second].stride_w);
      graph_.values[n.name] = graph_.AddNode(std::move(e), info);
      return Status::Ok();
    }
    const int t = vals[0] >= 0 ? 0 : vals[1] >= 0 ? 1 : -1;
    if (t < 0) return Unsupported(n, "both operands are constants");
    if ((op == "Sub" || op == "BiasAdd") && t != 0)
      return Unsupported(n, "a constant first operand");
    return EmitAffine(n, vals[t], names[t], *cs[1 - t], multiply, op == "Sub");
  }
  if (op == "Mean") {
    if (vals.size() != 2 || vals[0] < 0 || !cs[1] || !cs[1]->is_int) {
      return Unsupported(n, "expected a tensor and constant int32 axes");
    }
    std::set<int> axes;
    for (int32_t a : cs[1]->i) axes.insert(a < 0 ? a + 4 : a);
    if (axes != std::set<int>{1, 2} || !AttrBool(n, "keep_dims", false)) {
      return Unsupported(n, "only a mean over axes [1, 2] with keep_dims (global average pooling)");
    }
    EngineNode e;
    e.name = n.name;
    e.op = EngineOp::kGlobalAvgPool;
    e.inputs = {vals[0]};
    e.owner = n.name;
    ValueInfo info = graph_.infos[vals[0]];
    info.h = info.w = 1;
    graph_.values[n.name] = graph_.AddNode(std::move(e), info);
    return Status::Ok();
  }
  return Unsupported(n);
}

Result<ImportResult> Importer::Finish() {
  std::vector<int> outs;
  for (const std::string& o : options_.outputs) {
    const int v = graph_.ValueOf(Resolve(o));
    if (v < 0) return Error(ErrorCode::kInternal, "output '" + o + "' was not computed");
    outs.push_back(v);
  }
  import::EngineGraph::Card card;
  card.name = options_.name;
  card.description = "Frozen pretrained features imported from a TensorFlow.js graph model";
  auto str_field = [&](const char* key) {
    auto it = doc_.find(key);
    return it != doc_.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  card.origin["source"] = options_.origin;
  card.origin["generated_by"] = str_field("generatedBy");
  card.origin["converted_by"] = str_field("convertedBy");
  ImportResult result;
  FLAWLENS_RETURN_IF_ERROR(graph_.Finish(options_, outs, card, &result));
  result.tf_nodes_used = static_cast<int>(order_.size());
  return result;
}

}  // namespace flawlens::tfjs::internal
