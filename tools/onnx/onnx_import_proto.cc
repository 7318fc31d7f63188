// The ModelProto side of the ONNX importer (onnx_import_internal.h): tensors
// decoded into constants, node attributes, the producer index, the walk from
// the requested outputs and the x * gate(x) patterns.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/limits.h"
#include "onnx/onnx_import_internal.h"

namespace flawlens::onnx_import::internal {

Status Error(ErrorCode code, const std::string& message) {
  return import::CommandError(kCommand, code, message);
}

std::string DimsString(const std::vector<int64_t>& d) {
  std::string out = "[";
  for (size_t k = 0; k < d.size(); ++k) out += (k ? ", " : "") + std::to_string(d[k]);
  return out + "]";
}

std::string NodeName(const onnx::NodeProto& n) {
  if (!n.name().empty()) return n.name();
  return n.output_size() > 0 ? n.output(0) : n.op_type();
}

Status DecodeTensor(const onnx::TensorProto& t, const std::string& what, uint64_t* budget,
                    Constant* c) {
  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL || t.external_data_size() > 0) {
    return Error(ErrorCode::kUnsupported,
                 what +
                     " keeps its data in an external file (save the model with "
                     "save_as_external_data=False)");
  }
  if (t.has_segment()) return Error(ErrorCode::kUnsupported, what + " is a segment of a tensor");
  if (t.dims_size() > 8)
    return Error(ErrorCode::kBadShape, what + ": rank " + std::to_string(t.dims_size()) + " > 8");
  c->dims.clear();
  c->elements = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || d > kMaxTensorElements || !CheckedMul(c->elements, d, &c->elements) ||
        c->elements > kMaxTensorElements) {
      return Error(ErrorCode::kLimitExceeded, what + ": dimension " + std::to_string(d) +
                                                  " is negative or the tensor has " + "more than " +
                                                  std::to_string(kMaxTensorElements) + " elements");
    }
    c->dims.push_back(d);
  }
  const uint64_t cost = static_cast<uint64_t>(c->elements) * 8;
  if (cost > *budget) {
    return Error(ErrorCode::kLimitExceeded, "the constants on the path need more than " +
                                                std::to_string(kMaxWeightBytes) + " bytes");
  }
  *budget -= cost;
  const size_t n = static_cast<size_t>(c->elements);
  const bool raw = t.has_raw_data();
  const std::string& bytes = t.raw_data();
  auto size_error = [&](size_t found, const char* unit) {
    return Error(ErrorCode::kTruncated, what + ": shape " + DimsString(c->dims) + " needs " +
                                            std::to_string(n) + " values, the tensor holds " +
                                            std::to_string(found) + " " + unit);
  };
  switch (t.data_type()) {
    case onnx::TensorProto_DataType_FLOAT: {
      c->f.resize(n);
      if (raw) {
        if (bytes.size() != n * 4) return size_error(bytes.size(), "bytes");
        if (n) std::memcpy(c->f.data(), bytes.data(), n * 4);
      } else {
        if (static_cast<size_t>(t.float_data_size()) != n)
          return size_error(t.float_data_size(), "floats");
        std::copy(t.float_data().begin(), t.float_data().end(), c->f.begin());
      }
      return Status::Ok();
    }
    case onnx::TensorProto_DataType_FLOAT16: {
      c->f.resize(n);
      if (raw) {
        if (bytes.size() != n * 2) return size_error(bytes.size(), "bytes");
        for (size_t k = 0; k < n; ++k) {
          c->f[k] = import::HalfToFloat(static_cast<uint16_t>(static_cast<uint8_t>(bytes[2 * k]) |
                                                      static_cast<uint8_t>(bytes[2 * k + 1]) << 8));
        }
      } else {
        if (static_cast<size_t>(t.int32_data_size()) != n)
          return size_error(t.int32_data_size(), "values");
        for (size_t k = 0; k < n; ++k)
          c->f[k] = import::HalfToFloat(static_cast<uint16_t>(t.int32_data(static_cast<int>(k))));
      }
      return Status::Ok();
    }
    case onnx::TensorProto_DataType_DOUBLE: {
      c->f.resize(n);
      if (raw) {
        if (bytes.size() != n * 8) return size_error(bytes.size(), "bytes");
        for (size_t k = 0; k < n; ++k) {
          double d;
          std::memcpy(&d, bytes.data() + 8 * k, 8);
          c->f[k] = static_cast<float>(d);
        }
      } else {
        if (static_cast<size_t>(t.double_data_size()) != n)
          return size_error(t.double_data_size(), "doubles");
        for (size_t k = 0; k < n; ++k)
          c->f[k] = static_cast<float>(t.double_data(static_cast<int>(k)));
      }
      return Status::Ok();
    }
    case onnx::TensorProto_DataType_INT64: {
      c->is_int = true;
      c->i.resize(n);
      if (raw) {
        if (bytes.size() != n * 8) return size_error(bytes.size(), "bytes");
        if (n) std::memcpy(c->i.data(), bytes.data(), n * 8);
      } else {
        if (static_cast<size_t>(t.int64_data_size()) != n)
          return size_error(t.int64_data_size(), "values");
        std::copy(t.int64_data().begin(), t.int64_data().end(), c->i.begin());
      }
      return Status::Ok();
    }
    case onnx::TensorProto_DataType_BOOL:
    case onnx::TensorProto_DataType_INT32: {
      c->is_int = true;
      c->i.resize(n);
      const size_t width = t.data_type() == onnx::TensorProto_DataType_BOOL ? 1 : 4;
      if (raw) {
        if (bytes.size() != n * width) return size_error(bytes.size(), "bytes");
        for (size_t k = 0; k < n; ++k) {
          int32_t v = static_cast<uint8_t>(bytes[k]);
          if (width == 4) std::memcpy(&v, bytes.data() + 4 * k, 4);
          c->i[k] = v;
        }
      } else {
        if (static_cast<size_t>(t.int32_data_size()) != n)
          return size_error(t.int32_data_size(), "values");
        std::copy(t.int32_data().begin(), t.int32_data().end(), c->i.begin());
      }
      return Status::Ok();
    }
    default:
      return Error(ErrorCode::kBadDtype,
                   what + ": data type " + std::to_string(t.data_type()) +
                       " is not supported (float32, float16, float64, int64, int32, bool)");
  }
}

// ---- nodes and their attributes ------------------------------------------------
std::string Importer::Label(int id) const {
  const onnx::NodeProto& n = *nodes_[id];
  std::string who = n.name().empty()
                        ? (n.output_size() > 0 ? "producing '" + Printable(n.output(0)) + "'"
                                               : "#" + std::to_string(id))
                        : "'" + Printable(n.name()) + "'";
  return "node " + who + " (op '" + Printable(n.op_type()) + "')";
}

Status Importer::Fail(int id, ErrorCode code, const std::string& why) const {
  auto it = reached_.find(id);
  const std::string target =
      it == reached_.end() ? "" : " on the path to '" + Printable(it->second) + "'";
  return Error(code, Label(id) + target + ": " + why);
}

Status Importer::Unsupported(int id, const std::string& why) const {
  auto it = reached_.find(id);
  const std::string target =
      it == reached_.end() ? "" : " on the path to '" + Printable(it->second) + "'";
  return Error(ErrorCode::kUnsupported,
               Label(id) + target + " is not supported" + (why.empty() ? "" : ": " + why));
}

Status Importer::CheckAttributes(int id, std::initializer_list<const char*> allowed) const {
  for (const onnx::AttributeProto& a : nodes_[id]->attribute()) {
    bool ok = false;
    for (const char* name : allowed) ok = ok || a.name() == name;
    if (!ok) return Unsupported(id, "attribute '" + Printable(a.name()) + "'");
  }
  return Status::Ok();
}

const onnx::AttributeProto* Importer::Attr(int id, const char* name) const {
  for (const onnx::AttributeProto& a : nodes_[id]->attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

// The attribute when present (nullptr: absent), checked to be of `type`; older
// exporters leave the type UNDEFINED with the value set, which is accepted.
Result<const onnx::AttributeProto*> Importer::TypedAttr(int id, const char* name,
                                                        onnx::AttributeProto_AttributeType type,
                                                        const char* what) const {
  const onnx::AttributeProto* a = Attr(id, name);
  if (!a || a->type() == type) return a;
  bool undefined_ok = a->type() == onnx::AttributeProto_AttributeType_UNDEFINED;
  if (type == onnx::AttributeProto_AttributeType_INT) undefined_ok = undefined_ok && a->has_i();
  if (type == onnx::AttributeProto_AttributeType_FLOAT) undefined_ok = undefined_ok && a->has_f();
  if (type == onnx::AttributeProto_AttributeType_STRING) undefined_ok = undefined_ok && a->has_s();
  if (!undefined_ok)
    return Fail(id, ErrorCode::kBadGraph, std::string("attribute '") + name + "' is not " + what);
  return a;
}

Status Importer::AttrInt(int id, const char* name, int64_t fallback, int64_t* out) const {
  Result<const onnx::AttributeProto*> a =
      TypedAttr(id, name, onnx::AttributeProto_AttributeType_INT, "an int");
  if (!a.ok()) return a.status();
  *out = *a ? (*a)->i() : fallback;
  return Status::Ok();
}

Status Importer::AttrFloat(int id, const char* name, float fallback, float* out) const {
  Result<const onnx::AttributeProto*> a =
      TypedAttr(id, name, onnx::AttributeProto_AttributeType_FLOAT, "a float");
  if (!a.ok()) return a.status();
  *out = *a ? (*a)->f() : fallback;
  return Status::Ok();
}

Status Importer::AttrInts(int id, const char* name, std::vector<int64_t>* out) const {
  out->clear();
  Result<const onnx::AttributeProto*> a =
      TypedAttr(id, name, onnx::AttributeProto_AttributeType_INTS, "a list of ints");
  if (!a.ok()) return a.status();
  if (!*a) return Status::Ok();
  if ((*a)->ints_size() > 16)
    return Fail(id, ErrorCode::kBadGraph, std::string("attribute '") + name + "' is too long");
  out->assign((*a)->ints().begin(), (*a)->ints().end());
  return Status::Ok();
}

Status Importer::AttrString(int id, const char* name, const std::string& fallback,
                            std::string* out) const {
  Result<const onnx::AttributeProto*> a =
      TypedAttr(id, name, onnx::AttributeProto_AttributeType_STRING, "a string");
  if (!a.ok()) return a.status();
  *out = *a ? (*a)->s() : fallback;
  return Status::Ok();
}

// ---- indexing and the walk ---------------------------------------------------
Status Importer::Index() {
  const onnx::GraphProto& g = model_.graph();
  if (g.node_size() > kMaxOnnxNodes) {
    return Error(ErrorCode::kLimitExceeded, "the graph has " + std::to_string(g.node_size()) +
                                                " nodes, more than " +
                                                std::to_string(kMaxOnnxNodes));
  }
  for (const onnx::TensorProto& t : g.initializer()) {
    if (t.name().empty()) return Error(ErrorCode::kBadGraph, "an initializer has no name");
    if (!initializers_.emplace(t.name(), &t).second) {
      return Error(ErrorCode::kBadGraph, "initializer '" + Printable(t.name()) + "' appears twice");
    }
  }
  for (const onnx::ValueInfoProto& v : g.input()) {
    if (!initializers_.count(v.name())) graph_inputs_.emplace(v.name(), &v);
  }
  for (int id = 0; id < g.node_size(); ++id) {
    const onnx::NodeProto& n = g.node(id);
    nodes_.push_back(&n);
    for (const std::string& out : n.output()) {
      if (out.empty()) continue;  // an omitted optional output
      if (initializers_.count(out) || graph_inputs_.count(out) ||
          !producer_.emplace(out, id).second) {
        return Error(ErrorCode::kBadGraph, "tensor '" + Printable(out) +
                                               "' is produced more than once (" + Label(id) + ")");
      }
    }
  }
  return Status::Ok();
}

// Identity and Dropout (inference) pass their input through.
std::string Importer::Resolve(const std::string& name) const {
  std::string cur = name;
  for (size_t hops = 0; hops <= nodes_.size(); ++hops) {
    auto it = producer_.find(cur);
    if (it == producer_.end()) return cur;
    const onnx::NodeProto& n = *nodes_[it->second];
    const bool pass = n.op_type() == "Identity" || n.op_type() == "Dropout";
    if (!pass || n.input_size() < 1 || n.output_size() < 1 || n.output(0) != cur) return cur;
    cur = n.input(0);
  }
  return cur;
}

Status Importer::Walk() {
  // Iterative depth-first search from each output; colours catch cycles.
  std::vector<uint8_t> state(nodes_.size(), 0);  // 0 new, 1 on stack, 2 done
  for (const std::string& out : options_.outputs) {
    auto it = producer_.find(out);
    if (it == producer_.end()) {
      if (initializers_.count(out))
        return Error(ErrorCode::kUnsupported,
                     "output '" + Printable(out) + "' is a constant, not a feature map");
      if (graph_inputs_.count(out)) {
        return Error(ErrorCode::kUnsupported,
                     "output '" + Printable(out) + "' is the network input itself");
      }
      std::string names;
      for (const onnx::ValueInfoProto& v : model_.graph().output()) {
        names += (names.empty() ? "'" : ", '") + Printable(v.name()) + "'";
      }
      return Error(ErrorCode::kBadGraph,
                   "output '" + Printable(out) +
                       "' is not a tensor of the graph (the graph's outputs: " +
                       (names.empty() ? "none" : names) +
                       "; any node output can be a feature layer, see `flawlens import-onnx "
                       "MODEL --list`)");
    }
    if (state[it->second] != 0) continue;
    state[it->second] = 1;
    reached_.emplace(it->second, out);
    std::vector<std::pair<int, int>> stack{{it->second, 0}};
    while (!stack.empty()) {
      auto& [id, next] = stack.back();
      const onnx::NodeProto& n = *nodes_[id];
      if (next < n.input_size()) {
        const std::string& in = n.input(next++);
        if (in.empty()) continue;  // an omitted optional input
        auto found = producer_.find(in);
        if (found == producer_.end()) {
          if (initializers_.count(in) || graph_inputs_.count(in)) continue;
          return Error(ErrorCode::kBadGraph,
                       Label(id) + " reads '" + Printable(in) +
                           "', which no node produces and which is neither an initializer nor "
                           "a graph input (a missing initializer?)");
        }
        const int child = found->second;
        if (state[child] == 1) {
          return Error(ErrorCode::kBadGraph, "the graph has a cycle through " + Label(child) +
                                                 " (on the path to '" + Printable(out) + "')");
        }
        if (state[child] == 0) {
          state[child] = 1;
          reached_.emplace(child, out);
          stack.emplace_back(child, 0);
        }
      } else {
        state[id] = 2;
        order_.push_back(id);
        stack.pop_back();
      }
    }
  }
  return Status::Ok();
}

bool Importer::IsConst(const std::string& resolved) const {
  if (initializers_.count(resolved)) return true;
  auto it = producer_.find(resolved);
  return it != producer_.end() && nodes_[it->second]->op_type() == "Constant";
}

Result<const Constant*> Importer::ConstOf(const std::string& resolved) {
  auto cached = consts_.find(resolved);
  if (cached != consts_.end()) return &cached->second;
  Constant c;
  auto init = initializers_.find(resolved);
  if (init != initializers_.end()) {
    FLAWLENS_RETURN_IF_ERROR(
        DecodeTensor(*init->second, "initializer '" + Printable(resolved) + "'", &budget_, &c));
  } else {
    auto it = producer_.find(resolved);
    if (it == producer_.end() || nodes_[it->second]->op_type() != "Constant") {
      return Error(ErrorCode::kInternal, "'" + Printable(resolved) + "' is not a constant");
    }
    const int id = it->second;
    const onnx::NodeProto& n = *nodes_[id];
    if (n.attribute_size() != 1) {
      return Fail(id, ErrorCode::kBadGraph, "a Constant needs exactly one value attribute");
    }
    const onnx::AttributeProto& a = n.attribute(0);
    if (a.name() == "value") {
      if (!a.has_t()) return Fail(id, ErrorCode::kBadGraph, "'value' holds no tensor");
      FLAWLENS_RETURN_IF_ERROR(DecodeTensor(a.t(), Label(id), &budget_, &c));
    } else if (a.name() == "value_float") {
      c.dims = {};
      c.f = {a.f()};
    } else if (a.name() == "value_floats") {
      if (a.floats_size() > kMaxChannels)
        return Fail(id, ErrorCode::kLimitExceeded, "'value_floats' is too long");
      c.dims = {a.floats_size()};
      c.elements = a.floats_size();
      c.f.assign(a.floats().begin(), a.floats().end());
    } else if (a.name() == "value_int") {
      c.dims = {};
      c.is_int = true;
      c.i = {a.i()};
    } else if (a.name() == "value_ints") {
      if (a.ints_size() > kMaxChannels)
        return Fail(id, ErrorCode::kLimitExceeded, "'value_ints' is too long");
      c.dims = {a.ints_size()};
      c.elements = a.ints_size();
      c.is_int = true;
      c.i.assign(a.ints().begin(), a.ints().end());
    } else {
      return Unsupported(id, "Constant attribute '" + Printable(a.name()) + "'");
    }
  }
  return &(consts_[resolved] = std::move(c));
}

void Importer::FindPatterns() {
  // Raw consumer counts over the path (inputs resolved through Identity).
  std::map<std::string, int> raw;
  auto passes = [&](int id) {
    const std::string& op = nodes_[id]->op_type();
    return op == "Identity" || op == "Dropout";
  };
  for (int id : order_) {
    if (passes(id)) continue;
    for (const std::string& in : nodes_[id]->input())
      if (!in.empty()) ++raw[Resolve(in)];
  }
  auto private_gate = [&](const std::string& name, const char* op) -> int {
    auto it = producer_.find(name);
    if (it == producer_.end() || raw[name] != 1 || graph_.outputs.count(name)) return -1;
    const onnx::NodeProto& g = *nodes_[it->second];
    if (g.op_type() != op || g.input_size() != 1 || g.output_size() != 1) return -1;
    return it->second;
  };
  for (int id : order_) {
    const onnx::NodeProto& m = *nodes_[id];
    if (m.op_type() != "Mul" || m.input_size() != 2) continue;
    const std::string p = Resolve(m.input(0)), q = Resolve(m.input(1));
    for (int k = 0; k < 2; ++k) {
      const std::string& x = k == 0 ? p : q;
      const std::string& gate = k == 0 ? q : p;
      if (const int s = private_gate(gate, "Sigmoid");
          s >= 0 && Resolve(nodes_[s]->input(0)) == x) {
        patterns_[id] = {PatternKind::kSilu, x, 0.0f};
        absorbed_.insert(s);
        break;
      }
      if (const int h = private_gate(gate, "HardSigmoid");
          h >= 0 && Resolve(nodes_[h]->input(0)) == x) {
        float alpha = 0.2f, beta = 0.5f;
        if (!AttrFloat(h, "alpha", 0.2f, &alpha).ok() || !AttrFloat(h, "beta", 0.5f, &beta).ok())
          continue;
        // x * clamp(alpha x + beta, 0, 1) is the engine's x * relu6(x + 3) * alpha
        // when beta = 3 alpha and 6 alpha is 1.
        if (std::fabs(alpha - 1.0f / 6.0f) < 1e-6f && std::fabs(beta - 0.5f) < 1e-6f) {
          patterns_[id] = {PatternKind::kHardSwish, x, alpha};
          absorbed_.insert(h);
          break;
        }
      }
    }
  }
  for (int id : order_) {
    if (absorbed_.count(id) || passes(id)) continue;
    auto pat = patterns_.find(id);
    if (pat != patterns_.end()) {
      ++graph_.consumers[pat->second.x];
      continue;
    }
    for (const std::string& in : nodes_[id]->input())
      if (!in.empty()) ++graph_.consumers[Resolve(in)];
  }
}

}  // namespace flawlens::onnx_import::internal
