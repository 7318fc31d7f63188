// The importers' shared engine graph and backbone writing (emit.h).
#include "import/emit.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include "core/limits.h"
#include "image/preprocess.h"
#include "model/graph_builder.h"

namespace flawlens::import {

namespace {

using ojson = nlohmann::ordered_json;

// Compact JSON; invalid UTF-8 in names is replaced rather than thrown on.
std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

}  // namespace

Status CommandError(const char* command, ErrorCode code, const std::string& message) {
  return Status(code, std::string(command) + ": " + message);
}

Status CheckOutputList(const char* command, const std::vector<std::string>& outputs,
                       const char* what) {
  if (outputs.empty()) {
    return CommandError(command, ErrorCode::kInvalidArgument,
                        std::string("no output ") + what + " given (--outputs)");
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (outputs[i] == outputs[j]) {
        return CommandError(command, ErrorCode::kInvalidArgument,
                            "output '" + Printable(outputs[i]) + "' is listed twice");
      }
    }
  }
  return Status::Ok();
}

Status ParseInputSize(const char* command, const std::string& text, int* w, int* h) {
  int a = 0, b = 0;
  char x = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &a, &x, &b, &extra) != 3 || (x != 'x' && x != 'X') ||
      a < 1 || b < 1 || a > kMaxModelInputSide || b > kMaxModelInputSide) {
    return CommandError(command, ErrorCode::kInvalidArgument,
                        "--input '" + text + "' must be WxH with sides in [1, " +
                            std::to_string(kMaxModelInputSide) + "], e.g. 256x256");
  }
  *w = a;
  *h = b;
  return Status::Ok();
}

Status ParseChannelTriple(const char* command, const std::string& text, const char* what,
                          float out[3]) {
  std::vector<float> v;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    char* end = nullptr;
    const float f = std::strtof(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !std::isfinite(f)) {
      v.clear();
      break;
    }
    v.push_back(f);
  }
  if (v.size() != 1 && v.size() != 3) {
    return CommandError(command, ErrorCode::kInvalidArgument,
                        std::string(what) + " '" + text + "' must be one number or three (r,g,b)");
  }
  for (int c = 0; c < 3; ++c) out[c] = v[v.size() == 1 ? 0 : c];
  return Status::Ok();
}

float HalfToFloat(uint16_t h) {
  const int sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float v;
  if (exponent == 0) {
    v = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    v = mantissa ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  }
  return sign ? -v : v;
}

std::string Printable(const std::string& s) {
  std::string out;
  for (char ch : s.substr(0, 200)) {
    const unsigned char u = static_cast<unsigned char>(ch);
    out += u < 0x20 || u >= 0x7f ? '?' : ch;
  }
  if (s.size() > 200) out += "...";
  return out;
}

Result<std::vector<uint8_t>> ReadFileBytes(const char* command, const std::string& path,
                                           uint64_t limit, const std::string& what) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f)
    return CommandError(command, ErrorCode::kInvalidArgument,
                        what + " '" + path + "' cannot be opened");
  const std::streamoff size = f.tellg();
  if (size < 0)
    return CommandError(command, ErrorCode::kInvalidArgument,
                        what + " '" + path + "' cannot be read");
  if (static_cast<uint64_t>(size) > limit) {
    return CommandError(command, ErrorCode::kLimitExceeded,
                        what + " '" + path + "' is larger than " + std::to_string(limit) +
                            " bytes");
  }
  std::vector<uint8_t> data(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(data.data()), size)) {
    return CommandError(command, ErrorCode::kInvalidArgument,
                        what + " '" + path + "' cannot be read");
  }
  return data;
}

std::string FileStem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string stem = path.substr(slash == std::string::npos ? 0 : slash + 1);
  const size_t dot = stem.rfind('.');
  if (dot != std::string::npos && dot > 0) stem.resize(dot);
  return stem;
}

// ---- the engine graph -----------------------------------------------------------
int EngineGraph::AddNode(EngineNode node, const ValueInfo& info) {
  // Engine names: printable ASCII, unique, bounded.
  if (node.name.size() > 200) node.name.resize(200);
  for (char& ch : node.name) {
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '_';
  }
  if (node.name.empty() || node.name == GraphBuilder::kInput) node.name = "n_" + node.name;
  if (used_names_.count(node.name)) {
    const std::string base = node.name;
    for (int k = 1; used_names_.count(node.name); ++k) node.name = base + "_" + std::to_string(k);
  }
  used_names_.insert(node.name);
  nodes.push_back(std::move(node));
  infos.push_back(info);
  return static_cast<int>(nodes.size());
}

int EngineGraph::ValueOf(const std::string& name) const {
  auto it = values.find(name);
  return it == values.end() ? -1 : it->second;
}

bool EngineGraph::Foldable(int value, const std::string& x, bool conv_only) const {
  if (value <= 0) return false;
  const EngineNode& e = nodes[value - 1];
  const bool elementwise = e.op == EngineOp::kAdd || e.op == EngineOp::kMul;
  const bool op_ok = e.op == EngineOp::kConv2d || (!conv_only && elementwise);
  auto c = consumers.find(x);
  return op_ok && e.activation == Activation::kNone && e.owner == x && c != consumers.end() &&
         c->second == 1 && !outputs.count(x);
}

int EngineGraph::ApplyActivation(int v, const std::string& x, const std::string& name,
                                 const std::string& owner, Activation act, float alpha,
                                 bool conv_only) {
  if (Foldable(v, x, conv_only)) {
    EngineNode& e = nodes[v - 1];
    e.activation = act;
    e.alpha = alpha;
    e.owner = owner;
    return v;
  }
  EngineNode a;
  a.name = name;
  a.op = EngineOp::kActivation;
  a.inputs = {v};
  a.activation = act;
  a.alpha = alpha;
  a.owner = owner;
  return AddNode(std::move(a), infos[v]);
}

void EngineGraph::Affine(int v, const std::string& x, const std::string& name,
                         const std::string& owner, std::vector<float> scale,
                         std::vector<float> shift) {
  const int ch = infos[v].c;
  if (scale.size() == 1) scale.assign(ch, scale[0]);
  if (shift.size() == 1) shift.assign(ch, shift[0]);
  if (Foldable(v, x, /*conv_only=*/true)) {
    EngineNode& e = nodes[v - 1];
    if (e.bias.empty()) e.bias.assign(e.out_c, 0.0f);
    const size_t per_out = e.weight.size() / e.out_c;
    for (int o = 0; o < e.out_c; ++o) {
      if (!scale.empty()) {
        for (size_t j = 0; j < per_out; ++j) e.weight[o * per_out + j] *= scale[o];
      }
      // Only the terms given: a multiply or add alone stays one rounding.
      if (!scale.empty() && !shift.empty()) {
        e.bias[o] = e.bias[o] * scale[o] + shift[o];
      } else if (!scale.empty()) {
        e.bias[o] *= scale[o];
      } else if (!shift.empty()) {
        e.bias[o] += shift[o];
      }
    }
    e.owner = owner;
    values[owner] = v;
    return;
  }
  EngineNode d;
  d.name = name;
  d.op = EngineOp::kConv2d;
  d.inputs = {v};
  d.groups = ch;
  d.out_c = ch;
  d.weight = scale.empty() ? std::vector<float>(ch, 1.0f) : std::move(scale);
  d.bias = shift.empty() ? std::vector<float>(ch, 0.0f) : std::move(shift);
  d.owner = owner;
  values[owner] = AddNode(std::move(d), infos[v]);
}

// ---- writing ------------------------------------------------------------------
// The engine graph as model-file JSON through the one graph writer
// (model/graph_builder.h); conv weights and biases go to `tensors`.
std::string EngineGraph::GraphJson(int output, std::vector<ModelTensor>* tensors) const {
  auto value_name = [&](int v) {
    return v == 0 ? std::string(GraphBuilder::kInput) : nodes[v - 1].name;
  };
  GraphBuilder g(infos[0].h, infos[0].w, infos[0].c);
  for (const EngineNode& e : nodes) {
    std::vector<std::string> inputs;
    for (int v : e.inputs) inputs.push_back(value_name(v));
    PoolParams pool;
    pool.kernel_h = e.kh;
    pool.kernel_w = e.kw;
    pool.stride_h = e.sh;
    pool.stride_w = e.sw;
    pool.dilation_h = e.dh;
    pool.dilation_w = e.dw;
    pool.pad_top = e.pt;
    pool.pad_left = e.pl;
    pool.pad_bottom = e.pb;
    pool.pad_right = e.pr;
    pool.count_include_pad = e.count_include_pad;
    switch (e.op) {
      case EngineOp::kConv2d: {
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
        p.activation = e.activation;
        p.alpha = e.alpha;
        const int64_t per_out = int64_t{e.out_c} * e.kh * e.kw;
        g.Conv2d(e.name, inputs[0], p,
                 {{e.out_c, e.kh, e.kw, static_cast<int64_t>(e.weight.size()) / per_out}, e.weight},
                 e.bias);
        break;
      }
      case EngineOp::kActivation:
        g.Activate(e.name, inputs[0], e.activation, e.alpha);
        break;
      case EngineOp::kMaxPool2d:
        g.MaxPool2d(e.name, inputs[0], pool);
        break;
      case EngineOp::kAvgPool2d:
        g.AvgPool2d(e.name, inputs[0], pool);
        break;
      case EngineOp::kGlobalAvgPool:
        g.GlobalAvgPool(e.name, inputs[0]);
        break;
      case EngineOp::kUpsample:
        g.Upsample(e.name, inputs[0], e.mode, e.scale_h, e.scale_w);
        break;
      case EngineOp::kConcat:
        g.Concat(e.name, inputs);
        break;
      case EngineOp::kAdd:
        g.Add(e.name, inputs[0], inputs[1], e.activation, e.alpha);
        break;
      case EngineOp::kMul:
        g.Mul(e.name, inputs[0], inputs[1], e.activation, e.alpha);
        break;
    }
  }
  *tensors = g.tensors();
  return g.GraphJson(value_name(output));
}

// The backbone's model card: origin, licence, feature layers.
std::string EngineGraph::CardJson(const BackboneOptions& options, const Card& card,
                                  const Backbone& result) const {
  ojson j;
  j["name"] = card.name;
  j["kind"] = "backbone";
  j["description"] = card.description;
  j["origin"] = card.origin;
  j["licence"] = options.licence;
  j["input"] = {{"w", infos[0].w}, {"h", infos[0].h}, {"c", infos[0].c}};
  ojson features = ojson::array();
  for (const FeatureLayer& f : result.features) {
    ojson l;
    l["node"] = f.node;
    l["stride"] = f.stride_h == f.stride_w ? ojson(f.stride_h) : ojson({f.stride_h, f.stride_w});
    l["channels"] = f.channels;
    l["h"] = f.h;
    l["w"] = f.w;
    l["offset"] = f.offset;
    features.push_back(std::move(l));
  }
  j["features"] = features;
  j["output"] = {{"h", result.out_h}, {"w", result.out_w}, {"c", result.out_c}};
  j["imported_by"] = std::string("flawlens ") + command_;
  return Dump(j);
}

Status EngineGraph::Finish(const BackboneOptions& options, const std::vector<int>& outs,
                           const Card& card, Backbone* result) {
  int finest = -1;
  for (int v : outs) {
    if (finest < 0 ||
        int64_t{infos[v].h} * infos[v].w > int64_t{infos[finest].h} * infos[finest].w)
      finest = v;
  }
  const ValueInfo target = infos[finest];
  std::vector<int> parts;
  int offset = 0;
  for (size_t k = 0; k < outs.size(); ++k) {
    const ValueInfo& info = infos[outs[k]];
    FeatureLayer layer;
    layer.node = options.outputs[k];
    layer.h = info.h;
    layer.w = info.w;
    layer.channels = info.c;
    layer.stride_h = info.stride_h;
    layer.stride_w = info.stride_w;
    layer.offset = offset;
    offset += info.c;
    result->features.push_back(layer);
    int v = outs[k];
    if (info.h != target.h || info.w != target.w) {
      if (target.h % info.h != 0 || target.w % info.w != 0 ||
          target.h / info.h != target.w / info.w || target.h / info.h > 64) {
        return CommandError(command_, ErrorCode::kBadShape,
                            "output '" + Printable(layer.node) + "' is " +
                                std::to_string(info.w) + "x" + std::to_string(info.h) +
                                ", not an integer fraction of the finest output " +
                                std::to_string(target.w) + "x" + std::to_string(target.h) +
                                "; choose an --input divisible by the largest stride");
      }
      EngineNode up;
      up.name = options.outputs[k] + "/upsample";
      up.op = EngineOp::kUpsample;
      up.mode = UpsampleMode::kBilinear;
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
    if (offset > kMaxChannels)
      return CommandError(command_, ErrorCode::kLimitExceeded,
                          "the outputs have more than " + std::to_string(kMaxChannels) +
                              " channels");
    EngineNode cat;
    cat.name = "features";
    cat.op = EngineOp::kConcat;
    cat.inputs = parts;
    ValueInfo info = target;
    info.c = offset;
    output = AddNode(std::move(cat), info);
  }
  result->in_w = infos[0].w;
  result->in_h = infos[0].h;
  result->in_c = infos[0].c;
  result->out_h = infos[output].h;
  result->out_w = infos[output].w;
  result->out_c = infos[output].c;
  result->spec.graph_json = GraphJson(output, &result->spec.tensors);

  PreprocessConfig pre;
  pre.resize_w = infos[0].w;
  pre.resize_h = infos[0].h;
  pre.channels = infos[0].c;
  pre.scale = options.scale;
  for (int c = 0; c < 3; ++c) {
    pre.mean[c] = options.mean[c];
    pre.std[c] = options.std[c];
  }
  Status valid = pre.Validate();
  if (!valid.ok()) return CommandError(command_, valid.code(), "preprocess: " + valid.message());
  result->spec.preprocess_json = PreprocessToJson(pre);
  result->spec.card_json = CardJson(options, card, *result);
  result->engine_nodes = static_cast<int>(nodes.size());
  return Status::Ok();
}

Status WriteChecked(const char* command, Backbone* out) {
  // LoadModel runs every format check and Graph::Finalize (shapes, limits).
  out->bytes = WriteModel(out->spec);
  Result<std::unique_ptr<Model>> loaded = LoadModel(out->bytes.data(), out->bytes.size());
  if (!loaded.ok()) {
    return CommandError(command, loaded.status().code(),
                        "the imported graph does not load: " + loaded.status().message());
  }
  const Shape& shape = (*loaded)->graph.output_shape();
  if (shape.h != out->out_h || shape.w != out->out_w || shape.c != out->out_c) {
    return CommandError(command, ErrorCode::kInternal,
                        "the engine computes a different output shape than the importer");
  }
  return Status::Ok();
}

}  // namespace flawlens::import
