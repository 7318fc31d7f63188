// TF.js graph model -> flawlens backbone. See tfjs_import.h.
//
// Steps: parse model.json (GraphDef nodes + weights manifest), decode the
// weight shards into constants, walk back from the requested outputs, find
// the hard-swish / hard-sigmoid patterns TF leaves unfused, then map every
// node on the path onto engine ops in topological order, folding constant
// scales / shifts and activations into the producing convolution when that
// convolution feeds nothing else.
#include "import/tfjs_import.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "core/limits.h"
#include "image/preprocess.h"

namespace flawlens::tfjs {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

Status Error(ErrorCode code, const std::string& message) {
  return Status(code, "import-tfjs: " + message);
}

// nlohmann's parser is iterative, but the depth of what a hostile file nests
// is bounded here anyway before anything is parsed.
bool JsonDepthAtMost(const std::string& text, int max_depth) {
  bool in_string = false, escaped = false;
  int depth = 0;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::string Base64Decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) continue;  // '=' padding, whitespace
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
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

uint32_t ReadU32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// A decoded weight (TF layout, row-major).
struct Constant {
  std::vector<int64_t> shape;
  int64_t elements = 1;
  bool is_int = false;
  std::vector<float> f;    // float weights
  std::vector<int32_t> i;  // int32 weights
};

struct TfInput {
  std::string node;
  int index = 0;  // output index ("node:1")
};

struct TfNode {
  std::string name, op;
  std::vector<TfInput> inputs;  // control inputs ("^x") dropped
  const json* attr = nullptr;   // object or nullptr
};

// ---- attributes ------------------------------------------------------------
const json* Attr(const TfNode& n, const char* key) {
  if (!n.attr) return nullptr;
  auto it = n.attr->find(key);
  return it == n.attr->end() ? nullptr : &*it;
}

bool AttrString(const TfNode& n, const char* key, std::string* out) {
  const json* a = Attr(n, key);
  if (!a || !a->is_object()) return false;
  auto s = a->find("s");
  if (s == a->end() || !s->is_string()) return false;
  *out = Base64Decode(s->get<std::string>());
  return true;
}

// list.i (strings or numbers); false when absent or malformed.
bool AttrInts(const TfNode& n, const char* key, std::vector<int64_t>* out) {
  const json* a = Attr(n, key);
  if (!a || !a->is_object()) return false;
  auto list = a->find("list");
  if (list == a->end() || !list->is_object()) return false;
  out->clear();
  auto items = list->find("i");
  if (items == list->end()) return true;  // empty list
  if (!items->is_array()) return false;
  for (const json& v : *items) {
    if (v.is_number_integer()) {
      out->push_back(v.get<int64_t>());
    } else if (v.is_string()) {
      const std::string& s = v.get_ref<const std::string&>();
      if (s.empty() || s.size() > 18) return false;
      char* end = nullptr;
      const long long x = std::strtoll(s.c_str(), &end, 10);
      if (*end != '\0') return false;
      out->push_back(x);
    } else {
      return false;
    }
  }
  return true;
}

std::vector<std::string> AttrStrings(const TfNode& n, const char* key) {
  std::vector<std::string> out;
  const json* a = Attr(n, key);
  if (!a || !a->is_object()) return out;
  auto list = a->find("list");
  if (list == a->end() || !list->is_object()) return out;
  auto items = list->find("s");
  if (items == list->end() || !items->is_array()) return out;
  for (const json& v : *items) {
    if (v.is_string()) out.push_back(Base64Decode(v.get<std::string>()));
  }
  return out;
}

bool AttrBool(const TfNode& n, const char* key, bool fallback) {
  const json* a = Attr(n, key);
  if (!a || !a->is_object()) return fallback;
  auto b = a->find("b");
  return b != a->end() && b->is_boolean() ? b->get<bool>() : fallback;
}

float AttrFloat(const TfNode& n, const char* key, float fallback) {
  const json* a = Attr(n, key);
  if (!a || !a->is_object()) return fallback;
  auto f = a->find("f");
  return f != a->end() && f->is_number() ? f->get<float>() : fallback;
}

// ---- weights ---------------------------------------------------------------
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t elements = 1;
  std::string dtype;  // float32 | int32
  std::string quant;  // "", float16, uint8, uint16
  double qmin = 0, qscale = 1;
  uint64_t bytes = 0;
};

Status ParseWeightSpec(const json& w, size_t group, WeightSpec* out) {
  const std::string where = "weights manifest group " + std::to_string(group);
  if (!w.is_object())
    return Error(ErrorCode::kBadHeader, where + ": a weight entry is not an object");
  auto name = w.find("name");
  auto shape = w.find("shape");
  auto dtype = w.find("dtype");
  if (name == w.end() || !name->is_string() || shape == w.end() || !shape->is_array() ||
      dtype == w.end() || !dtype->is_string()) {
    return Error(ErrorCode::kBadHeader, where + ": a weight entry needs name, shape and dtype");
  }
  out->name = name->get<std::string>();
  const std::string wn = "weight '" + out->name + "'";
  if (shape->size() > 8)
    return Error(ErrorCode::kBadShape,
                 wn + ": rank " + std::to_string(shape->size()) + " is above 8");
  for (const json& d : *shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > kMaxTensorElements) {
      return Error(ErrorCode::kLimitExceeded,
                   wn + ": dimension " + d.dump(-1, ' ', false, json::error_handler_t::replace) +
                       " is not an integer in [0, " + std::to_string(kMaxTensorElements) + "]");
    }
    out->shape.push_back(d.get<int64_t>());
    if (!CheckedMul(out->elements, out->shape.back(), &out->elements) ||
        out->elements > kMaxTensorElements) {
      return Error(ErrorCode::kLimitExceeded,
                   wn + ": more than " + std::to_string(kMaxTensorElements) + " elements");
    }
  }
  out->dtype = dtype->get<std::string>();
  if (out->dtype != "float32" && out->dtype != "int32") {
    return Error(ErrorCode::kUnsupported,
                 wn + ": dtype '" + out->dtype + "' is not supported (float32, int32)");
  }
  int bytes_per = 4;
  auto q = w.find("quantization");
  if (q != w.end() && !q->is_null()) {
    if (!q->is_object())
      return Error(ErrorCode::kBadHeader, wn + ": quantization is not an object");
    auto qd = q->find("dtype");
    if (qd == q->end() || !qd->is_string())
      return Error(ErrorCode::kBadHeader, wn + ": quantization has no dtype");
    out->quant = qd->get<std::string>();
    if (out->dtype != "float32") {
      return Error(ErrorCode::kUnsupported,
                   wn + ": quantized " + out->dtype + " weights are not supported");
    }
    if (out->quant == "float16") {
      bytes_per = 2;
    } else if (out->quant == "uint8" || out->quant == "uint16") {
      bytes_per = out->quant == "uint8" ? 1 : 2;
      auto mn = q->find("min");
      auto sc = q->find("scale");
      if (mn == q->end() || sc == q->end() || !mn->is_number() || !sc->is_number() ||
          !std::isfinite(mn->get<double>()) || !std::isfinite(sc->get<double>())) {
        return Error(ErrorCode::kBadHeader,
                     wn + ": " + out->quant + " quantization needs finite 'min' and 'scale'");
      }
      out->qmin = mn->get<double>();
      out->qscale = sc->get<double>();
    } else {
      return Error(ErrorCode::kUnsupported, wn + ": quantization dtype '" + out->quant +
                                                "' is not supported (float16, uint8, uint16)");
    }
  }
  out->bytes = static_cast<uint64_t>(out->elements) * bytes_per;
  return Status::Ok();
}

Status DecodeWeight(const WeightSpec& s, const uint8_t* p, Constant* c) {
  c->shape = s.shape;
  c->elements = s.elements;
  if (s.dtype == "int32") {
    c->is_int = true;
    c->i.resize(s.elements);
    for (int64_t k = 0; k < s.elements; ++k) c->i[k] = static_cast<int32_t>(ReadU32(p + 4 * k));
    return Status::Ok();
  }
  c->f.resize(s.elements);
  for (int64_t k = 0; k < s.elements; ++k) {
    float v;
    if (s.quant == "float16") {
      v = HalfToFloat(static_cast<uint16_t>(p[2 * k] | p[2 * k + 1] << 8));
    } else if (s.quant == "uint8") {
      v = static_cast<float>(s.qmin + s.qscale * p[k]);
    } else if (s.quant == "uint16") {
      v = static_cast<float>(s.qmin + s.qscale * (p[2 * k] | p[2 * k + 1] << 8));
    } else {
      const uint32_t bits = ReadU32(p + 4 * k);
      std::memcpy(&v, &bits, 4);
    }
    if (!std::isfinite(v)) {
      return Error(ErrorCode::kNonFinite, "weight '" + s.name + "': element " + std::to_string(k) +
                                              " is " + (std::isnan(v) ? "NaN" : "infinite"));
    }
    c->f[k] = v;
  }
  return Status::Ok();
}

Status LoadWeights(const json& manifest, const ShardReader& read_shard,
                   std::map<std::string, Constant>* consts) {
  if (!manifest.is_array()) return Error(ErrorCode::kBadHeader, "weightsManifest is not an array");
  // Validate every group's entries (sizes, limits) before reading any shard.
  std::vector<std::vector<WeightSpec>> groups;
  std::vector<std::vector<std::string>> paths;
  uint64_t total = 0;
  size_t shard_count = 0;
  for (size_t g = 0; g < manifest.size(); ++g) {
    const json& group = manifest[g];
    const std::string where = "weights manifest group " + std::to_string(g);
    if (!group.is_object()) return Error(ErrorCode::kBadHeader, where + " is not an object");
    auto p = group.find("paths");
    auto w = group.find("weights");
    if (p == group.end() || !p->is_array() || w == group.end() || !w->is_array()) {
      return Error(ErrorCode::kBadHeader, where + " needs 'paths' and 'weights' arrays");
    }
    paths.emplace_back();
    for (const json& path : *p) {
      if (!path.is_string())
        return Error(ErrorCode::kBadHeader, where + ": a path is not a string");
      if (++shard_count > static_cast<size_t>(kMaxShards)) {
        return Error(ErrorCode::kLimitExceeded,
                     "more than " + std::to_string(kMaxShards) + " weight shards");
      }
      paths.back().push_back(path.get<std::string>());
    }
    groups.emplace_back();
    for (const json& entry : *w) {
      WeightSpec spec;
      Status st = ParseWeightSpec(entry, g, &spec);
      if (!st.ok()) return st;
      total += spec.bytes;
      if (total > kMaxWeightBytes) {
        return Error(ErrorCode::kLimitExceeded,
                     "the weights need more than " + std::to_string(kMaxWeightBytes) + " bytes");
      }
      groups.back().push_back(std::move(spec));
    }
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<uint8_t> data;
    std::string shard_list;
    for (const std::string& path : paths[g]) {
      Result<std::vector<uint8_t>> shard = read_shard(path);
      if (!shard.ok()) return shard.status();
      if (data.size() + shard->size() > kMaxWeightBytes) {
        return Error(ErrorCode::kLimitExceeded,
                     "weight shards hold more than " + std::to_string(kMaxWeightBytes) + " bytes");
      }
      data.insert(data.end(), shard->begin(), shard->end());
      shard_list += (shard_list.empty() ? "'" : ", '") + path + "'";
    }
    uint64_t need = 0;
    for (const WeightSpec& s : groups[g]) need += s.bytes;
    if (data.size() < need) {
      return Error(ErrorCode::kTruncated,
                   "weights manifest group " + std::to_string(g) + ": shard(s) " +
                       (shard_list.empty() ? "(none)" : shard_list) + " hold " +
                       std::to_string(data.size()) + " bytes, the manifest's weights need " +
                       std::to_string(need));
    }
    if (data.size() > need) {
      return Error(ErrorCode::kBadShape,
                   "weights manifest group " + std::to_string(g) + ": shard(s) " + shard_list +
                       " hold " + std::to_string(data.size()) + " bytes, more than the " +
                       std::to_string(need) +
                       " the manifest's weights describe (shapes disagree with the data)");
    }
    uint64_t offset = 0;
    for (const WeightSpec& s : groups[g]) {
      if (consts->count(s.name)) {
        return Error(ErrorCode::kBadHeader,
                     "weight '" + s.name + "' appears twice in the manifest");
      }
      Constant c;
      Status st = DecodeWeight(s, data.data() + offset, &c);
      if (!st.ok()) return st;
      offset += s.bytes;
      (*consts)[s.name] = std::move(c);
    }
  }
  return Status::Ok();
}

// ---- graph parsing -----------------------------------------------------------
Status ParseNodes(const json& topology, std::vector<TfNode>* nodes,
                  std::map<std::string, int>* index) {
  if (!topology.is_object()) return Error(ErrorCode::kBadHeader, "modelTopology is not an object");
  auto list = topology.find("node");
  if (list == topology.end() || !list->is_array()) {
    return Error(ErrorCode::kBadHeader, "modelTopology has no 'node' array (not a graph model?)");
  }
  if (list->size() > static_cast<size_t>(kMaxTfNodes)) {
    return Error(ErrorCode::kLimitExceeded, "the graph has " + std::to_string(list->size()) +
                                                " nodes, more than " + std::to_string(kMaxTfNodes));
  }
  for (const json& j : *list) {
    if (!j.is_object()) return Error(ErrorCode::kBadHeader, "a graph node is not an object");
    auto name = j.find("name");
    auto op = j.find("op");
    if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty() ||
        op == j.end() || !op->is_string()) {
      return Error(ErrorCode::kBadHeader, "a graph node has no name or op");
    }
    TfNode n;
    n.name = name->get<std::string>();
    n.op = op->get<std::string>();
    auto attr = j.find("attr");
    if (attr != j.end() && attr->is_object()) n.attr = &*attr;
    auto inputs = j.find("input");
    if (inputs != j.end()) {
      if (!inputs->is_array())
        return Error(ErrorCode::kBadHeader, "node '" + n.name + "': 'input' is not an array");
      for (const json& in : *inputs) {
        if (!in.is_string())
          return Error(ErrorCode::kBadHeader, "node '" + n.name + "': an input is not a string");
        std::string s = in.get<std::string>();
        if (!s.empty() && s[0] == '^') continue;  // control dependency: no data
        TfInput input;
        const size_t colon = s.rfind(':');
        if (colon != std::string::npos && colon + 1 < s.size() && s.size() - colon <= 6 &&
            std::all_of(s.begin() + colon + 1, s.end(),
                        [](char c) { return c >= '0' && c <= '9'; })) {
          input.index = std::atoi(s.c_str() + colon + 1);
          s.resize(colon);
        }
        input.node = s;
        n.inputs.push_back(std::move(input));
      }
    }
    if (!index->emplace(n.name, static_cast<int>(nodes->size())).second) {
      return Error(ErrorCode::kBadGraph, "node name '" + n.name + "' appears twice");
    }
    nodes->push_back(std::move(n));
  }
  return Status::Ok();
}

// ---- the engine graph being built --------------------------------------------
struct ValueInfo {
  int h = 0, w = 0, c = 0;
  int stride_h = 1, stride_w = 1;
};

struct EngineNode {
  std::string name, op;
  std::vector<int> inputs;  // value ids: 0 = input, i + 1 = node i
  // conv2d
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int pt = 0, pl = 0, pb = 0, pr = 0, groups = 1, out_c = 0;
  std::vector<float> weight;  // OHWI
  std::vector<float> bias;    // out_c (empty: none)
  std::string activation = "none";
  float alpha = 0.0f;
  int scale_h = 1, scale_w = 1;  // upsample
  std::string owner;             // TF node whose value this node currently produces
};

enum class PatternKind { kHardSwish, kHardSigmoid };
struct Pattern {
  PatternKind kind;
  std::string x;  // the pattern's input
  float alpha = 0;
};

// Compact JSON; invalid UTF-8 in names is replaced rather than thrown on.
std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

class Importer {
 public:
  Importer(const ImportOptions& options) : options_(options) {}

  Result<ImportResult> Run(const std::string& text, const ShardReader& read_shard);

 private:
  Status Walk();
  void FindPatterns();
  Status Emit(const TfNode& n);
  Status Unsupported(const TfNode& n, const std::string& why = "") const;
  Status Fail(const TfNode& n, ErrorCode code, const std::string& why) const;
  std::string Resolve(const std::string& name) const;
  const Constant* ConstOf(const std::string& resolved) const;
  int ValueOf(const std::string& resolved) const;
  bool Foldable(int value, const std::string& x) const;
  int AddNode(EngineNode node, const ValueInfo& info);
  Status EmitConv(const TfNode& n, bool depthwise, bool fused);
  Status EmitAffine(const TfNode& n, int v, const std::string& x, const Constant& c, bool multiply,
                    bool negate);
  int ApplyActivation(const TfNode& n, int v, const std::string& x, const std::string& act,
                      float alpha);
  Result<ImportResult> Finish();
  std::string GraphJson(int output, std::vector<ModelTensor>* tensors) const;
  std::string CardJson(const ImportResult& result) const;

  const ImportOptions& options_;
  json doc_;
  std::vector<TfNode> nodes_;
  std::map<std::string, int> index_;
  std::map<std::string, Constant> consts_;
  std::vector<int> order_;                      // path nodes, topological
  std::map<std::string, std::string> reached_;  // node -> output it leads to
  std::map<std::string, Pattern> patterns_;     // pattern root -> pattern
  std::set<std::string> absorbed_;
  std::map<std::string, int> consumers_;  // effective consumers
  std::set<std::string> outputs_;         // resolved outputs
  std::map<std::string, int> values_;     // TF node -> engine value id
  std::vector<EngineNode> engine_;
  std::vector<ValueInfo> infos_;  // per value id
  std::set<std::string> used_names_;
  bool have_input_ = false;
};

Status Importer::Fail(const TfNode& n, ErrorCode code, const std::string& why) const {
  auto it = reached_.find(n.name);
  const std::string target = it == reached_.end() ? "" : " on the path to '" + it->second + "'";
  return Error(code, "node '" + n.name + "' (op '" + n.op + "')" + target + ": " + why);
}

Status Importer::Unsupported(const TfNode& n, const std::string& why) const {
  auto it = reached_.find(n.name);
  const std::string target = it == reached_.end() ? "" : " on the path to '" + it->second + "'";
  return Error(ErrorCode::kUnsupported, "node '" + n.name + "' (op '" + n.op + "')" + target +
                                            " is not supported" + (why.empty() ? "" : ": " + why));
}

std::string Importer::Resolve(const std::string& name) const {
  std::string cur = name;
  for (size_t hops = 0; hops <= nodes_.size(); ++hops) {
    auto it = index_.find(cur);
    if (it == index_.end()) return cur;
    const TfNode& n = nodes_[it->second];
    if ((n.op != "Identity" && n.op != "StopGradient") || n.inputs.size() != 1) return cur;
    cur = n.inputs[0].node;
  }
  return cur;
}

const Constant* Importer::ConstOf(const std::string& resolved) const {
  auto it = index_.find(resolved);
  if (it == index_.end() || nodes_[it->second].op != "Const") return nullptr;
  auto c = consts_.find(resolved);
  return c == consts_.end() ? nullptr : &c->second;
}

int Importer::ValueOf(const std::string& resolved) const {
  auto it = values_.find(resolved);
  return it == values_.end() ? -1 : it->second;
}

Status Importer::Walk() {
  // Iterative depth-first search from each output; colours catch cycles.
  std::vector<uint8_t> state(nodes_.size(), 0);  // 0 new, 1 on stack, 2 done
  for (const std::string& out : options_.outputs) {
    auto it = index_.find(out);
    if (it == index_.end()) {
      return Error(ErrorCode::kBadGraph, "output node '" + out + "' is not in the graph");
    }
    std::vector<std::pair<int, size_t>> stack{{it->second, 0}};
    if (state[it->second] == 0) {
      state[it->second] = 1;
      reached_.emplace(out, out);
    } else {
      stack.clear();
    }
    while (!stack.empty()) {
      auto& [id, next] = stack.back();
      const TfNode& n = nodes_[id];
      if (next < n.inputs.size()) {
        const TfInput& in = n.inputs[next++];
        auto found = index_.find(in.node);
        if (found == index_.end()) {
          return Error(ErrorCode::kBadGraph,
                       "node '" + n.name + "' reads '" + in.node + "', which is not in the graph");
        }
        const int child = found->second;
        if (state[child] == 1) {
          return Error(ErrorCode::kBadGraph, "the graph has a cycle through node '" + in.node +
                                                 "' (on the path to '" + out + "')");
        }
        if (state[child] == 0) {
          state[child] = 1;
          reached_.emplace(in.node, out);
          stack.emplace_back(child, 0);
        }
      } else {
        state[id] = 2;
        if (n.op != "Const") order_.push_back(id);
        stack.pop_back();
      }
    }
  }
  return Status::Ok();
}

bool IsScalar(const Constant* c) { return c && !c->is_int && c->elements == 1; }

void Importer::FindPatterns() {
  // Raw consumer counts over the path (inputs resolved through Identity).
  std::map<std::string, int> raw;
  for (int id : order_) {
    const TfNode& n = nodes_[id];
    if (n.op == "Identity" || n.op == "StopGradient") continue;
    for (const TfInput& in : n.inputs) ++raw[Resolve(in.node)];
  }
  auto node_of = [&](const std::string& resolved) -> const TfNode* {
    auto it = index_.find(resolved);
    return it == index_.end() ? nullptr : &nodes_[it->second];
  };
  auto is_add = [](const TfNode* n) {
    return n && (n->op == "Add" || n->op == "AddV2") && n->inputs.size() == 2;
  };
  auto is_mul = [](const TfNode* n) { return n && n->op == "Mul" && n->inputs.size() == 2; };
  auto private_to = [&](const std::string& name) {
    return raw[name] == 1 && !outputs_.count(name);
  };
  // relu6(x + 3): returns x, or "" when `name` is not that.
  auto relu6_plus3 = [&](const std::string& name) -> std::string {
    const TfNode* r = node_of(name);
    if (!r || r->op != "Relu6" || r->inputs.size() != 1 || !private_to(name)) return "";
    const std::string b_name = Resolve(r->inputs[0].node);
    const TfNode* b = node_of(b_name);
    if (!is_add(b) || !private_to(b_name)) return "";
    for (int k = 0; k < 2; ++k) {
      const Constant* c = ConstOf(Resolve(b->inputs[k].node));
      if (IsScalar(c) && c->f[0] == 3.0f && !ConstOf(Resolve(b->inputs[1 - k].node))) {
        return Resolve(b->inputs[1 - k].node);
      }
    }
    return "";
  };
  for (int id : order_) {
    const TfNode& m = nodes_[id];
    if (!is_mul(&m)) continue;
    const std::string p = Resolve(m.inputs[0].node), q = Resolve(m.inputs[1].node);
    for (int k = 0; k < 2; ++k) {
      const std::string& a_name = k == 0 ? p : q;
      const std::string& r_name = k == 0 ? q : p;
      const std::string x = relu6_plus3(r_name);
      if (x.empty()) continue;
      const TfNode* r = node_of(r_name);
      const std::string b_name = Resolve(r->inputs[0].node);
      // The SE gate: c * relu6(x + 3).
      const Constant* gate = ConstOf(a_name);
      if (IsScalar(gate)) {
        patterns_[m.name] = {PatternKind::kHardSigmoid, x, gate->f[0]};
        absorbed_.insert(r_name);
        absorbed_.insert(b_name);
        break;
      }
      // Hard swish: (c1 * x) * relu6(x + 3).
      const TfNode* a = node_of(a_name);
      if (!is_mul(a) || !private_to(a_name)) continue;
      for (int j = 0; j < 2; ++j) {
        const Constant* c1 = ConstOf(Resolve(a->inputs[j].node));
        if (IsScalar(c1) && Resolve(a->inputs[1 - j].node) == x) {
          patterns_[m.name] = {PatternKind::kHardSwish, x, c1->f[0]};
          absorbed_.insert(a_name);
          absorbed_.insert(r_name);
          absorbed_.insert(b_name);
          break;
        }
      }
      if (patterns_.count(m.name)) break;
    }
  }
  // Effective consumers: what reads each value once patterns are collapsed.
  for (int id : order_) {
    const TfNode& n = nodes_[id];
    if (absorbed_.count(n.name) || n.op == "Identity" || n.op == "StopGradient") continue;
    auto pat = patterns_.find(n.name);
    if (pat != patterns_.end()) {
      ++consumers_[pat->second.x];
      continue;
    }
    for (const TfInput& in : n.inputs) ++consumers_[Resolve(in.node)];
  }
}

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

// The engine graph as model-file JSON; conv weights and biases go to `tensors`.
std::string Importer::GraphJson(int output, std::vector<ModelTensor>* tensors) const {
  auto value_name = [&](int v) { return v == 0 ? std::string("input") : engine_[v - 1].name; };
  ojson graph;
  graph["input"] = {{"h", infos_[0].h}, {"w", infos_[0].w}, {"c", infos_[0].c}};
  ojson nodes = ojson::array();
  for (const EngineNode& e : engine_) {
    ojson j;
    j["name"] = e.name;
    j["op"] = e.op;
    ojson inputs = ojson::array();
    for (int v : e.inputs) inputs.push_back(value_name(v));
    j["inputs"] = inputs;
    if (e.op == "conv2d") {
      j["out_channels"] = e.out_c;
      j["kernel"] = {e.kh, e.kw};
      j["stride"] = {e.sh, e.sw};
      j["dilation"] = {e.dh, e.dw};
      j["pad"] = {e.pt, e.pl, e.pb, e.pr};
      j["groups"] = e.groups;
      j["weight"] = e.name + ".weight";
      if (!e.bias.empty()) j["bias"] = e.name + ".bias";
      ModelTensor wt;
      wt.name = e.name + ".weight";
      wt.shape = {e.out_c, e.kh, e.kw,
                  static_cast<int64_t>(e.weight.size() / (int64_t{e.out_c} * e.kh * e.kw))};
      wt.data = e.weight;
      tensors->push_back(std::move(wt));
      if (!e.bias.empty()) {
        ModelTensor bt;
        bt.name = e.name + ".bias";
        bt.shape = {e.out_c};
        bt.data = e.bias;
        tensors->push_back(std::move(bt));
      }
    }
    if (e.op == "conv2d" || e.op == "activation") {
      j["activation"] = e.activation;
      if (e.activation == "leaky_relu" || e.activation == "hard_swish" ||
          e.activation == "hard_sigmoid") {
        j["alpha"] = static_cast<double>(e.alpha);
      }
    }
    if (e.op == "upsample") {
      j["mode"] = "bilinear";
      j["scale"] = {e.scale_h, e.scale_w};
    }
    nodes.push_back(std::move(j));
  }
  graph["nodes"] = std::move(nodes);
  graph["output"] = value_name(output);
  return Dump(graph);
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

Result<ImportResult> Importer::Run(const std::string& text, const ShardReader& read_shard) {
  if (options_.outputs.empty())
    return Error(ErrorCode::kInvalidArgument, "no output node given (--outputs)");
  for (size_t i = 0; i < options_.outputs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options_.outputs[i] == options_.outputs[j]) {
        return Error(ErrorCode::kInvalidArgument,
                     "output '" + options_.outputs[i] + "' is listed twice");
      }
    }
  }
  if (options_.input_w < 1 || options_.input_h < 1 || options_.input_w > kMaxModelInputSide ||
      options_.input_h > kMaxModelInputSide) {
    return Error(ErrorCode::kInvalidArgument,
                 "input size must be in [1, " + std::to_string(kMaxModelInputSide) + "]");
  }
  if (text.size() > kMaxModelJsonBytes) {
    return Error(ErrorCode::kLimitExceeded,
                 "model.json is larger than " + std::to_string(kMaxModelJsonBytes) + " bytes");
  }
  if (!JsonDepthAtMost(text, 64))
    return Error(ErrorCode::kBadHeader, "model.json nests deeper than 64 levels");
  doc_ = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc_.is_discarded()) return Error(ErrorCode::kBadHeader, "model.json is not valid JSON");
  if (!doc_.is_object()) return Error(ErrorCode::kBadHeader, "model.json is not a JSON object");
  auto format = doc_.find("format");
  if (format != doc_.end() && format->is_string() && format->get<std::string>() != "graph-model") {
    return Error(ErrorCode::kUnsupported, "format '" + format->get<std::string>() +
                                              "' is not supported (only TF.js graph models)");
  }
  auto topology = doc_.find("modelTopology");
  auto manifest = doc_.find("weightsManifest");
  if (topology == doc_.end() || manifest == doc_.end()) {
    return Error(ErrorCode::kBadHeader, "model.json needs 'modelTopology' and 'weightsManifest'");
  }
  Status st = ParseNodes(*topology, &nodes_, &index_);
  if (!st.ok()) return st;
  st = LoadWeights(*manifest, read_shard, &consts_);
  if (!st.ok()) return st;
  // Every Const node's declared shape must match its weight.
  for (const TfNode& n : nodes_) {
    if (n.op != "Const") continue;
    auto c = consts_.find(n.name);
    if (c == consts_.end()) continue;  // reported if it is on the path
    const json* value = Attr(n, "value");
    if (!value || !value->is_object() || !value->contains("tensor")) continue;
    const json& tensor = (*value)["tensor"];
    if (!tensor.is_object() || !tensor.contains("tensorShape")) continue;
    const json& ts = tensor["tensorShape"];
    if (!ts.is_object()) continue;
    std::vector<int64_t> declared;
    if (ts.contains("dim") && ts["dim"].is_array()) {
      for (const json& d : ts["dim"]) {
        int64_t size = 0;  // protobuf JSON omits a zero size
        if (d.is_object() && d.contains("size")) {
          const json& s = d["size"];
          if (s.is_string())
            size = std::atoll(s.get<std::string>().c_str());
          else if (s.is_number_integer())
            size = s.get<int64_t>();
        }
        declared.push_back(size);
      }
    }
    if (declared != c->second.shape) {
      auto fmt = [](const std::vector<int64_t>& s) {
        std::string out = "[";
        for (size_t k = 0; k < s.size(); ++k) out += (k ? ", " : "") + std::to_string(s[k]);
        return out + "]";
      };
      return Error(ErrorCode::kBadShape, "const '" + n.name + "' declares shape " + fmt(declared) +
                                             " but the weights manifest has " +
                                             fmt(c->second.shape));
    }
  }
  st = Walk();
  if (!st.ok()) return st;
  for (const std::string& o : options_.outputs) outputs_.insert(Resolve(o));
  for (int id : order_) {
    const TfNode& n = nodes_[id];
    if (n.op == "Const" && !consts_.count(n.name)) {
      return Error(ErrorCode::kBadHeader, "const '" + n.name + "' has no weights in the manifest");
    }
  }
  for (const std::string& o : options_.outputs) {
    const std::string r = Resolve(o);
    auto it = index_.find(r);
    if (it != index_.end() && (nodes_[it->second].op == "Const")) {
      return Error(ErrorCode::kUnsupported, "output '" + o + "' is a constant, not a feature map");
    }
  }
  FindPatterns();
  infos_.assign(1, ValueInfo{});
  for (int id : order_) {
    st = Emit(nodes_[id]);
    if (!st.ok()) return st;
    if (engine_.size() > static_cast<size_t>(kMaxNodes)) {
      return Error(ErrorCode::kLimitExceeded,
                   "the imported graph has more than " + std::to_string(kMaxNodes) + " nodes");
    }
  }
  if (!have_input_)
    return Error(ErrorCode::kBadGraph, "no input placeholder on the path to the outputs");
  for (const std::string& o : options_.outputs) {
    const std::string r = Resolve(o);
    if (ValueOf(r) <= 0) {
      return Error(ErrorCode::kUnsupported,
                   "output '" + o + "' is the network input itself, not a feature map");
    }
  }
  return Finish();
}

}  // namespace

Result<ImportResult> ImportTfjs(const std::string& model_json, const ShardReader& read_shard,
                                const ImportOptions& options) {
  Importer importer(options);
  Result<ImportResult> result = Status(ErrorCode::kInternal, "import-tfjs: not run");
  try {
    result = importer.Run(model_json, read_shard);
  } catch (const std::exception& e) {
    // The code above checks types before every access; this is a backstop.
    return Error(ErrorCode::kBadHeader, std::string("malformed model.json: ") + e.what());
  }
  if (!result.ok()) return result;
  // The written model must load: LoadModel runs every format check and
  // Graph::Finalize (shapes, limits).
  result->bytes = WriteModel(result->spec);
  Result<std::unique_ptr<Model>> loaded = LoadModel(result->bytes.data(), result->bytes.size());
  if (!loaded.ok()) {
    return Error(loaded.status().code(),
                 "the imported graph does not load: " + loaded.status().message());
  }
  const Shape& out = (*loaded)->graph.output_shape();
  if (out.h != result->out_h || out.w != result->out_w || out.c != result->out_c) {
    return Error(ErrorCode::kInternal,
                 "the engine computes a different output shape than the importer");
  }
  return result;
}

Result<ImportResult> ImportTfjsFile(const std::string& model_json_path,
                                    const ImportOptions& options) {
  auto read_file = [](const std::string& path, uint64_t limit,
                      const std::string& what) -> Result<std::vector<uint8_t>> {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) return Error(ErrorCode::kInvalidArgument, what + " '" + path + "' cannot be opened");
    const std::streamoff size = f.tellg();
    if (size < 0)
      return Error(ErrorCode::kInvalidArgument, what + " '" + path + "' cannot be read");
    if (static_cast<uint64_t>(size) > limit) {
      return Error(ErrorCode::kLimitExceeded,
                   what + " '" + path + "' is larger than " + std::to_string(limit) + " bytes");
    }
    std::vector<uint8_t> data(static_cast<size_t>(size));
    f.seekg(0);
    if (size > 0 && !f.read(reinterpret_cast<char*>(data.data()), size)) {
      return Error(ErrorCode::kInvalidArgument, what + " '" + path + "' cannot be read");
    }
    return data;
  };
  Result<std::vector<uint8_t>> text = read_file(model_json_path, kMaxModelJsonBytes, "model.json");
  if (!text.ok()) return text.status();
  const size_t slash = model_json_path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "" : model_json_path.substr(0, slash + 1);
  ImportOptions opts = options;
  if (opts.name.empty()) {
    std::string stem = model_json_path.substr(slash == std::string::npos ? 0 : slash + 1);
    const size_t dot = stem.rfind('.');
    if (dot != std::string::npos && dot > 0) stem.resize(dot);
    opts.name = stem;
  }
  ShardReader reader = [&](const std::string& path) -> Result<std::vector<uint8_t>> {
    if (path.empty() || path[0] == '/' || path.find('\0') != std::string::npos || path == ".." ||
        path.rfind("../", 0) == 0 || path.find("/../") != std::string::npos) {
      return Error(
          ErrorCode::kInvalidArgument,
          "weight shard path '" + path + "' must be relative to model.json and stay in its folder");
    }
    Result<std::vector<uint8_t>> data = read_file(dir + path, kMaxWeightBytes, "weight shard");
    if (!data.ok()) {
      return Error(data.status().code(),
                   "weight shard '" + path + "' (next to model.json): " +
                       data.status().message().substr(std::string("import-tfjs: ").size()));
    }
    return data;
  };
  return ImportTfjs(std::string(text->begin(), text->end()), reader, opts);
}

Status ParseInputSize(const std::string& text, int* w, int* h) {
  int a = 0, b = 0;
  char x = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &a, &x, &b, &extra) != 3 || (x != 'x' && x != 'X') ||
      a < 1 || b < 1 || a > kMaxModelInputSide || b > kMaxModelInputSide) {
    return Error(ErrorCode::kInvalidArgument,
                 "--input '" + text + "' must be WxH with sides in [1, " +
                     std::to_string(kMaxModelInputSide) + "], e.g. 256x256");
  }
  *w = a;
  *h = b;
  return Status::Ok();
}

}  // namespace flawlens::tfjs
