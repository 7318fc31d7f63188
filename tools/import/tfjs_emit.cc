// TF nodes -> engine nodes; the model file's graph JSON and card (tfjs_internal.h).
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "image/preprocess.h"
#include "import/tfjs_internal.h"
#include "model/graph_builder.h"

namespace flawlens::tfjs::internal {

namespace {

// The importer only produces activation names it took from ActivationName.
Activation ActivationOfName(const std::string& name) {
  Activation a = Activation::kNone;
  ParseActivation(name, &a);
  return a;
}

// Compact JSON; invalid UTF-8 in names is replaced rather than thrown on.
std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

}  // namespace

bool Importer::Foldable(int value, const std::string& x) const {
  if (value <= 0) return false;
  const EngineNode& e = engine_[value - 1];
  auto c = consumers_.find(x);
  return e.op == "conv2d" && e.activation == "none" && e.owner == x && c != consumers_.end() &&
         c->second == 1 && !outputs_.count(x);
}

int Importer::AddNode(EngineNode node, const ValueInfo& info) {
  // Engine names: printable ASCII, unique.
  for (char& ch : node.name) {
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '_';
  }
  if (node.name.empty() || node.name == "input") node.name = "n_" + node.name;
  while (used_names_.count(node.name)) node.name += "_";
  used_names_.insert(node.name);
  engine_.push_back(std::move(node));
  infos_.push_back(info);
  return static_cast<int>(engine_.size());
}

int Importer::ApplyActivation(const TfNode& n, int v, const std::string& x, const std::string& act,
                              float alpha) {
  if (Foldable(v, x)) {
    EngineNode& e = engine_[v - 1];
    e.activation = act;
    e.alpha = alpha;
    e.owner = n.name;
    return v;
  }
  EngineNode a;
  a.name = n.name;
  a.op = "activation";
  a.inputs = {v};
  a.activation = act;
  a.alpha = alpha;
  a.owner = n.name;
  return AddNode(std::move(a), infos_[v]);
}

// x * scale + shift with a scalar or per-channel constant: folded into the
// producing convolution, else a 1x1 depthwise convolution.
Status Importer::EmitAffine(const TfNode& n, int v, const std::string& x, const Constant& c,
                            bool multiply, bool negate) {
  const int ch = infos_[v].c;
  const bool per_channel =
      c.elements == ch && !c.shape.empty() && c.shape.back() == ch &&
      std::all_of(c.shape.begin(), c.shape.end() - 1, [](int64_t d) { return d == 1; });
  if (c.is_int || !(c.elements == 1 || per_channel)) {
    return Unsupported(
        n, "the constant operand must be a float scalar or have one value per channel (" +
               std::to_string(ch) + ")");
  }
  auto k = [&](int o) {
    const float value = c.f[c.elements == 1 ? 0 : o];
    return negate ? -value : value;
  };
  if (Foldable(v, x)) {
    EngineNode& e = engine_[v - 1];
    if (e.bias.empty()) e.bias.assign(e.out_c, 0.0f);
    const size_t per_out = e.weight.size() / e.out_c;
    for (int o = 0; o < e.out_c; ++o) {
      if (multiply) {
        for (size_t j = 0; j < per_out; ++j) e.weight[o * per_out + j] *= k(o);
        e.bias[o] *= k(o);
      } else {
        e.bias[o] += k(o);
      }
    }
    e.owner = n.name;
    values_[n.name] = v;
    return Status::Ok();
  }
  EngineNode d;
  d.name = n.name;
  d.op = "conv2d";
  d.inputs = {v};
  d.groups = ch;
  d.out_c = ch;
  d.weight.resize(ch);
  d.bias.resize(ch);
  for (int o = 0; o < ch; ++o) {
    d.weight[o] = multiply ? k(o) : 1.0f;
    d.bias[o] = multiply ? 0.0f : k(o);
  }
  d.owner = n.name;
  values_[n.name] = AddNode(std::move(d), infos_[v]);
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
  const int v = ValueOf(x);
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
  const ValueInfo& in = infos_[v];
  const int kh = static_cast<int>(w->shape[0]), kw = static_cast<int>(w->shape[1]);
  const int64_t wi = w->shape[2], wo = w->shape[3];
  EngineNode e;
  e.name = n.name;
  e.op = "conv2d";
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
      static const std::map<std::string, std::string> kActs = {{"Relu", "relu"},
                                                               {"Relu6", "relu6"},
                                                               {"LeakyRelu", "leaky_relu"},
                                                               {"Sigmoid", "sigmoid"}};
      auto act = kActs.find(ops[1]);
      if (act == kActs.end()) return Unsupported(n, "fused op '" + ops[1] + "'");
      e.activation = act->second;
      if (ops[1] == "LeakyRelu") e.alpha = AttrFloat(n, "leakyrelu_alpha", 0.2f);
    }
  }
  e.owner = n.name;
  values_[n.name] = AddNode(std::move(e), out);
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
    ValueInfo& info = infos_[0];
    info.h = options_.input_h;
    info.w = options_.input_w;
    info.c = c;
    values_[n.name] = 0;
    return Status::Ok();
  }
  if (op == "Const") return Status::Ok();
  if (op == "_FusedConv2D") return EmitConv(n, false, true);
  if (op == "Conv2D") return EmitConv(n, false, false);
  if (op == "FusedDepthwiseConv2dNative") return EmitConv(n, true, true);
  if (op == "DepthwiseConv2dNative") return EmitConv(n, true, false);

  auto pattern = patterns_.find(n.name);
  if (pattern != patterns_.end()) {
    const int v = ValueOf(pattern->second.x);
    if (v < 0)
      return Unsupported(
          n, "its input '" + pattern->second.x + "' is not a tensor this importer computes");
    const char* act =
        pattern->second.kind == PatternKind::kHardSwish ? "hard_swish" : "hard_sigmoid";
    values_[n.name] = ApplyActivation(n, v, pattern->second.x, act, pattern->second.alpha);
    return Status::Ok();
  }

  // Operands: tensors (engine values) or constants.
  std::vector<std::string> names;
  std::vector<int> vals;
  std::vector<const Constant*> cs;
  for (const TfInput& in : n.inputs) {
    names.push_back(Resolve(in.node));
    cs.push_back(ConstOf(names.back()));
    vals.push_back(cs.back() ? -1 : ValueOf(names.back()));
    if (!cs.back() && vals.back() < 0) {
      return Unsupported(n,
                         "its input '" + names.back() + "' is not a tensor this importer computes");
    }
  }
  if (op == "Relu" || op == "Relu6" || op == "Sigmoid" || op == "LeakyRelu") {
    if (vals.size() != 1 || vals[0] < 0) return Unsupported(n, "expected one tensor input");
    const std::string act = op == "Relu"      ? "relu"
                            : op == "Relu6"   ? "relu6"
                            : op == "Sigmoid" ? "sigmoid"
                                              : "leaky_relu";
    const float alpha = op == "LeakyRelu" ? AttrFloat(n, "alpha", 0.2f) : 0.0f;
    values_[n.name] = ApplyActivation(n, vals[0], names[0], act, alpha);
    return Status::Ok();
  }
  if (op == "Add" || op == "AddV2" || op == "BiasAdd" || op == "Sub" || op == "Mul") {
    if (vals.size() != 2) return Unsupported(n, "expected two inputs");
    const bool multiply = op == "Mul";
    if (vals[0] >= 0 && vals[1] >= 0) {
      if (op == "Sub" || op == "BiasAdd") return Unsupported(n, "two tensor operands");
      const ValueInfo& a = infos_[vals[0]];
      const ValueInfo& b = infos_[vals[1]];
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
      e.op = multiply ? "mul" : "add";
      e.inputs = {first, second};
      e.owner = n.name;
      ValueInfo info = infos_[first];
      info.stride_h = std::max(infos_[first].stride_h, infos_[second].stride_h);
      info.stride_w = std::max(infos_[first].stride_w, infos_[second].stride_w);
      values_[n.name] = AddNode(std::move(e), info);
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
    e.op = "global_avgpool";
    e.inputs = {vals[0]};
    e.owner = n.name;
    ValueInfo info = infos_[vals[0]];
    info.h = info.w = 1;
    values_[n.name] = AddNode(std::move(e), info);
    return Status::Ok();
  }
  return Unsupported(n);
}

// The engine graph as model-file JSON (through the one graph writer,
// model/graph_builder.h); conv weights and biases go to `tensors`.
std::string Importer::GraphJson(int output, std::vector<ModelTensor>* tensors) const {
  auto value_name = [&](int v) { return v == 0 ? std::string(GraphBuilder::kInput) : engine_[v - 1].name; };
  GraphBuilder g(infos_[0].h, infos_[0].w, infos_[0].c);
  for (const EngineNode& e : engine_) {
    std::vector<std::string> inputs;
    for (int v : e.inputs) inputs.push_back(value_name(v));
    if (e.op == "conv2d") {
      ConvParams p;
      p.out_channels = e.out_c;
      p.kernel_h = e.kh;
      p.kernel_w = e.kw;
      p.stride_h = e.sh;
      p.stride_w = e.sw;
      p.dilation_h = e.dh;
      p.dilation_w = e.dw;
      p.pad_top = e.pt;
      p.pad_left = e.pl;
      p.pad_bottom = e.pb;
      p.pad_right = e.pr;
      p.groups = e.groups;
      p.activation = ActivationOfName(e.activation);
      p.alpha = e.alpha;
      const int64_t per_out = int64_t{e.out_c} * e.kh * e.kw;
      g.Conv2d(e.name, inputs[0], p,
               {{e.out_c, e.kh, e.kw, static_cast<int64_t>(e.weight.size()) / per_out}, e.weight},
               e.bias);
    } else if (e.op == "activation") {
      g.Activate(e.name, inputs[0], ActivationOfName(e.activation), e.alpha);
    } else if (e.op == "upsample") {
      g.Upsample(e.name, inputs[0], UpsampleMode::kBilinear, e.scale_h, e.scale_w);
    } else if (e.op == "concat") {
      g.Concat(e.name, inputs);
    } else if (e.op == "add") {
      g.Add(e.name, inputs[0], inputs[1]);
    } else if (e.op == "mul") {
      g.Mul(e.name, inputs[0], inputs[1]);
    } else if (e.op == "global_avgpool") {
      g.GlobalAvgPool(e.name, inputs[0]);
    }
  }
  *tensors = g.tensors();
  return g.GraphJson(value_name(output));
}

// The backbone's model card: origin, licence, feature layers.
std::string Importer::CardJson(const ImportResult& result) const {
  ojson card;
  card["name"] = options_.name;
  card["kind"] = "backbone";
  card["description"] = "Frozen pretrained features imported from a TensorFlow.js graph model";
  ojson origin;
  origin["source"] = options_.origin;
  auto str_field = [&](const char* key) {
    auto it = doc_.find(key);
    return it != doc_.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  origin["generated_by"] = str_field("generatedBy");
  origin["converted_by"] = str_field("convertedBy");
  card["origin"] = origin;
  card["licence"] = options_.licence;
  card["input"] = {{"w", infos_[0].w}, {"h", infos_[0].h}, {"c", infos_[0].c}};
  ojson features = ojson::array();
  for (const FeatureLayer& f : result.features) {
    ojson j;
    j["node"] = f.node;
    j["stride"] = f.stride_h == f.stride_w ? ojson(f.stride_h) : ojson({f.stride_h, f.stride_w});
    j["channels"] = f.channels;
    j["h"] = f.h;
    j["w"] = f.w;
    j["offset"] = f.offset;
    features.push_back(std::move(j));
  }
  card["features"] = features;
  card["output"] = {{"h", result.out_h}, {"w", result.out_w}, {"c", result.out_c}};
  card["imported_by"] = "flawlens import-tfjs";
  return Dump(card);
}

Result<ImportResult> Importer::Finish() {
  ImportResult result;
  // Outputs: the coarser ones upsampled to the finest, then concatenated.
  std::vector<int> outs;
  int finest = -1;
  for (const std::string& o : options_.outputs) {
    const int v = ValueOf(Resolve(o));
    if (v < 0) return Error(ErrorCode::kInternal, "output '" + o + "' was not computed");
    outs.push_back(v);
    if (finest < 0 ||
        int64_t{infos_[v].h} * infos_[v].w > int64_t{infos_[finest].h} * infos_[finest].w)
      finest = v;
  }
  const ValueInfo target = infos_[finest];
  std::vector<int> parts;
  int offset = 0;
  for (size_t k = 0; k < outs.size(); ++k) {
    const ValueInfo& info = infos_[outs[k]];
    FeatureLayer layer;
    layer.node = options_.outputs[k];
    layer.h = info.h;
    layer.w = info.w;
    layer.channels = info.c;
    layer.stride_h = info.stride_h;
    layer.stride_w = info.stride_w;
    layer.offset = offset;
    offset += info.c;
    result.features.push_back(layer);
    int v = outs[k];
    if (info.h != target.h || info.w != target.w) {
      if (target.h % info.h != 0 || target.w % info.w != 0 ||
          target.h / info.h != target.w / info.w || target.h / info.h > 64) {
        return Error(ErrorCode::kBadShape,
                     "output '" + layer.node + "' is " + std::to_string(info.w) + "x" +
                         std::to_string(info.h) +
                         ", not an integer fraction of the finest output " +
                         std::to_string(target.w) + "x" + std::to_string(target.h) +
                         "; choose an --input divisible by the largest stride");
      }
      EngineNode up;
      up.name = options_.outputs[k] + "/upsample";
      up.op = "upsample";
      up.inputs = {v};
      up.scale_h = target.h / info.h;
      up.scale_w = target.w / info.w;
      ValueInfo up_info = info;
      up_info.h = target.h;
      up_info.w = target.w;
      v = AddNode(std::move(up), up_info);
    }
    parts.push_back(v);
  }
  int output = parts[0];
  if (parts.size() > 1) {
    EngineNode cat;
    cat.name = "features";
    cat.op = "concat";
    cat.inputs = parts;
    ValueInfo info = target;
    info.c = offset;
    output = AddNode(std::move(cat), info);
  }
  result.in_c = infos_[0].c;
  result.out_h = infos_[output].h;
  result.out_w = infos_[output].w;
  result.out_c = infos_[output].c;

  result.spec.graph_json = GraphJson(output, &result.spec.tensors);

  PreprocessConfig pre;
  pre.resize_w = infos_[0].w;
  pre.resize_h = infos_[0].h;
  pre.channels = infos_[0].c;
  pre.scale = options_.scale;
  for (int c = 0; c < 3; ++c) {
    pre.mean[c] = options_.mean;
    pre.std[c] = options_.std;
  }
  Status valid = pre.Validate();
  if (!valid.ok()) return Error(valid.code(), "preprocess: " + valid.message());
  result.spec.preprocess_json = PreprocessToJson(pre);

  result.spec.card_json = CardJson(result);
  result.tf_nodes_used = static_cast<int>(order_.size());
  result.engine_nodes = static_cast<int>(engine_.size());
  return result;
}

}  // namespace flawlens::tfjs::internal
