// model.json -> TF nodes, attributes and the path to the outputs (tfjs_internal.h).
#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "import/tfjs_internal.h"

namespace flawlens::tfjs::internal {

Status Error(ErrorCode code, const std::string& message) {
  return import::CommandError(kCommand, code, message);
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

namespace {
bool IsScalar(const Constant* c) { return c && !c->is_int && c->elements == 1; }
}  // namespace

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
    return raw[name] == 1 && !graph_.outputs.count(name);
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
      ++graph_.consumers[pat->second.x];
      continue;
    }
    for (const TfInput& in : n.inputs) ++graph_.consumers[Resolve(in.node)];
  }
}

}  // namespace flawlens::tfjs::internal
