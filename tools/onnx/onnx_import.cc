// ONNX model -> flawlens backbone. See onnx_import.h.
//
// Steps: parse the ModelProto (Debian's onnx_proto), index the tensors every
// node produces, walk back from the requested outputs (cycles and tensors
// nobody produces are errors), find SiLU / hard-swish written as x * gate(x),
// then map every node on the path onto engine ops in topological order.
// Tensors are NCHW in ONNX and NHWC in the engine: convolution weights are
// permuted OIHW -> OHWI, per-channel constants are checked against axis 1.
// Constant scales / shifts (BatchNormalization, Mul / Add / Sub / Div by a
// per-channel constant) and activations fold into the producing convolution
// when nothing else reads its output; otherwise they become their own nodes.
#include "onnx/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "core/limits.h"
#include "image/preprocess.h"

namespace flawlens::onnx_import {
namespace {

using ojson = nlohmann::ordered_json;

Status Error(ErrorCode code, const std::string& message) {
  return Status(code, "import-onnx: " + message);
}

std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// Printable, bounded form of a name taken from the file (for messages).
std::string Printable(const std::string& s) {
  std::string out;
  for (char ch : s.substr(0, 200)) {
    const unsigned char u = static_cast<unsigned char>(ch);
    out += u < 0x20 || u >= 0x7f ? '?' : ch;
  }
  if (s.size() > 200) out += "...";
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

std::string DimsString(const std::vector<int64_t>& d) {
  std::string out = "[";
  for (size_t k = 0; k < d.size(); ++k) out += (k ? ", " : "") + std::to_string(d[k]);
  return out + "]";
}

// A decoded constant (initializer or Constant node), row-major in ONNX order.
struct Constant {
  std::vector<int64_t> dims;
  int64_t elements = 1;
  bool is_int = false;
  std::vector<float> f;    // FLOAT, FLOAT16, DOUBLE
  std::vector<int64_t> i;  // INT64, INT32
};

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
          c->f[k] = HalfToFloat(static_cast<uint16_t>(static_cast<uint8_t>(bytes[2 * k]) |
                                                      static_cast<uint8_t>(bytes[2 * k + 1]) << 8));
        }
      } else {
        if (static_cast<size_t>(t.int32_data_size()) != n)
          return size_error(t.int32_data_size(), "values");
        for (size_t k = 0; k < n; ++k)
          c->f[k] = HalfToFloat(static_cast<uint16_t>(t.int32_data(static_cast<int>(k))));
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

// ---- the engine graph being built -------------------------------------------
struct ValueInfo {
  int h = 0, w = 0, c = 0;
  int rank = 4;  // 4: NCHW map; 2: [1, C] (a 1x1xC engine value)
  int stride_h = 1, stride_w = 1;
};

struct EngineNode {
  std::string name, op;
  std::vector<int> inputs;  // value ids: 0 = input, i + 1 = node i
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int pt = 0, pl = 0, pb = 0, pr = 0, groups = 1, out_c = 0;
  bool count_include_pad = true;
  std::vector<float> weight;  // OHWI
  std::vector<float> bias;    // out_c (empty: none)
  std::string activation = "none";
  float alpha = 0.0f;
  std::string mode;              // upsample
  int scale_h = 1, scale_w = 1;  // upsample
  std::string owner;             // ONNX tensor this node's value currently is
};

enum class PatternKind { kSilu, kHardSwish };
struct Pattern {
  PatternKind kind;
  std::string x;  // the pattern's input
  float alpha = 0;
};

// Operator versions up to this opset are read; older versions are read with
// their own attribute / input conventions (Clip < 11, Resize 10, Upsample).
constexpr int64_t kMaxOpset = 17;

constexpr char kSupportedOps[] =
    "Conv, BatchNormalization, Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, "
    "MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean, Add, Sub, Mul, Div, "
    "Concat, Resize, Upsample, Flatten, Identity, Dropout, Constant";

class Importer {
 public:
  explicit Importer(const ImportOptions& options) : options_(options) {}
  Result<ImportResult> Run(const uint8_t* data, size_t size);

 private:
  std::string Label(int id) const;
  Status Fail(int id, ErrorCode code, const std::string& why) const;
  Status Unsupported(int id, const std::string& why = "") const;
  Status CheckAttributes(int id, std::initializer_list<const char*> allowed) const;
  const onnx::AttributeProto* Attr(int id, const char* name) const;
  Status AttrInt(int id, const char* name, int64_t fallback, int64_t* out) const;
  Status AttrFloat(int id, const char* name, float fallback, float* out) const;
  Status AttrInts(int id, const char* name, std::vector<int64_t>* out) const;
  Status AttrString(int id, const char* name, const std::string& fallback, std::string* out) const;

  Status Index();
  Status Walk();
  std::string Resolve(const std::string& name) const;
  Result<const Constant*> ConstOf(const std::string& resolved);
  bool IsConst(const std::string& resolved) const;
  int ValueOf(const std::string& resolved) const;
  void FindPatterns();
  Status SetInput(const std::string& name);
  Status Emit(int id);
  int AddNode(EngineNode node, const ValueInfo& info);
  bool Foldable(int value, const std::string& x, bool conv_only) const;
  int ApplyActivation(int id, int v, const std::string& x, const std::string& act, float alpha);
  Status EmitAffine(int id, int v, const std::string& x, std::vector<float> scale,
                    std::vector<float> shift);
  Status PerChannel(int id, const Constant& c, const ValueInfo& info,
                    std::vector<float>* out) const;
  Status Window(int id, const ValueInfo& in, int kh, int kw, bool ceil_mode, EngineNode* e,
                ValueInfo* out);
  Status EmitConv(int id);
  Status EmitPool(int id, bool max);
  Status EmitResize(int id);
  Status EmitBinary(int id);
  Status EmitClip(int id);
  Result<ImportResult> Finish();
  std::string GraphJson(int output, std::vector<ModelTensor>* tensors) const;
  std::string CardJson(const ImportResult& result) const;

  const ImportOptions& options_;
  onnx::ModelProto model_;
  int64_t opset_ = 0;
  std::vector<const onnx::NodeProto*> nodes_;
  std::map<std::string, int> producer_;  // tensor -> node
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::map<std::string, const onnx::ValueInfoProto*> graph_inputs_;
  std::map<std::string, Constant> consts_;  // decoded, by tensor name
  uint64_t budget_ = kMaxWeightBytes * 2;   // 8 bytes per element budgeted
  std::vector<int> order_;                  // path nodes, topological
  std::map<int, std::string> reached_;      // node -> output it leads to
  std::map<int, Pattern> patterns_;         // Mul node -> pattern
  std::set<int> absorbed_;                  // nodes folded into a pattern
  std::map<std::string, int> consumers_;    // effective consumers per tensor
  std::set<std::string> outputs_;           // resolved outputs
  std::map<std::string, int> values_;       // tensor -> engine value id
  std::vector<EngineNode> engine_;
  std::vector<ValueInfo> infos_;  // per value id
  std::set<std::string> used_names_;
  std::string input_name_;
};

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

Status Importer::AttrInt(int id, const char* name, int64_t fallback, int64_t* out) const {
  const onnx::AttributeProto* a = Attr(id, name);
  if (!a) {
    *out = fallback;
    return Status::Ok();
  }
  if (a->type() != onnx::AttributeProto_AttributeType_INT &&
      !(a->type() == onnx::AttributeProto_AttributeType_UNDEFINED && a->has_i())) {
    return Fail(id, ErrorCode::kBadGraph, std::string("attribute '") + name + "' is not an int");
  }
  *out = a->i();
  return Status::Ok();
}

Status Importer::AttrFloat(int id, const char* name, float fallback, float* out) const {
  const onnx::AttributeProto* a = Attr(id, name);
  if (!a) {
    *out = fallback;
    return Status::Ok();
  }
  if (a->type() != onnx::AttributeProto_AttributeType_FLOAT &&
      !(a->type() == onnx::AttributeProto_AttributeType_UNDEFINED && a->has_f())) {
    return Fail(id, ErrorCode::kBadGraph, std::string("attribute '") + name + "' is not a float");
  }
  *out = a->f();
  return Status::Ok();
}

Status Importer::AttrInts(int id, const char* name, std::vector<int64_t>* out) const {
  out->clear();
  const onnx::AttributeProto* a = Attr(id, name);
  if (!a) return Status::Ok();
  if (a->type() != onnx::AttributeProto_AttributeType_INTS &&
      a->type() != onnx::AttributeProto_AttributeType_UNDEFINED) {
    return Fail(id, ErrorCode::kBadGraph,
                std::string("attribute '") + name + "' is not a list of ints");
  }
  if (a->ints_size() > 16)
    return Fail(id, ErrorCode::kBadGraph, std::string("attribute '") + name + "' is too long");
  out->assign(a->ints().begin(), a->ints().end());
  return Status::Ok();
}

Status Importer::AttrString(int id, const char* name, const std::string& fallback,
                            std::string* out) const {
  const onnx::AttributeProto* a = Attr(id, name);
  if (!a) {
    *out = fallback;
    return Status::Ok();
  }
  if (a->type() != onnx::AttributeProto_AttributeType_STRING &&
      !(a->type() == onnx::AttributeProto_AttributeType_UNDEFINED && a->has_s())) {
    return Fail(id, ErrorCode::kBadGraph, std::string("attribute '") + name + "' is not a string");
  }
  *out = a->s();
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

int Importer::ValueOf(const std::string& resolved) const {
  auto it = values_.find(resolved);
  return it == values_.end() ? -1 : it->second;
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
    if (it == producer_.end() || raw[name] != 1 || outputs_.count(name)) return -1;
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
      ++consumers_[pat->second.x];
      continue;
    }
    for (const std::string& in : nodes_[id]->input())
      if (!in.empty()) ++consumers_[Resolve(in)];
  }
}

// ---- emitting engine nodes ----------------------------------------------------
int Importer::AddNode(EngineNode node, const ValueInfo& info) {
  // Engine names: printable ASCII, unique, bounded.
  if (node.name.size() > 200) node.name.resize(200);
  for (char& ch : node.name) {
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '_';
  }
  if (node.name.empty() || node.name == "input") node.name = "n_" + node.name;
  if (used_names_.count(node.name)) {
    const std::string base = node.name;
    for (int k = 1; used_names_.count(node.name); ++k) node.name = base + "_" + std::to_string(k);
  }
  used_names_.insert(node.name);
  engine_.push_back(std::move(node));
  infos_.push_back(info);
  return static_cast<int>(engine_.size());
}

std::string NodeName(const onnx::NodeProto& n) {
  if (!n.name().empty()) return n.name();
  return n.output_size() > 0 ? n.output(0) : n.op_type();
}

bool Importer::Foldable(int value, const std::string& x, bool conv_only) const {
  if (value <= 0) return false;
  const EngineNode& e = engine_[value - 1];
  const bool op_ok = e.op == "conv2d" || (!conv_only && (e.op == "add" || e.op == "mul"));
  auto c = consumers_.find(x);
  return op_ok && e.activation == "none" && e.owner == x && c != consumers_.end() &&
         c->second == 1 && !outputs_.count(x);
}

int Importer::ApplyActivation(int id, int v, const std::string& x, const std::string& act,
                              float alpha) {
  const std::string& out = nodes_[id]->output(0);
  if (Foldable(v, x, /*conv_only=*/false)) {
    EngineNode& e = engine_[v - 1];
    e.activation = act;
    e.alpha = alpha;
    e.owner = out;
    return v;
  }
  EngineNode a;
  a.name = NodeName(*nodes_[id]);
  a.op = "activation";
  a.inputs = {v};
  a.activation = act;
  a.alpha = alpha;
  a.owner = out;
  return AddNode(std::move(a), infos_[v]);
}

// y = x * scale[c] + shift[c]: folded into the producing convolution, else a
// 1x1 depthwise convolution.
Status Importer::EmitAffine(int id, int v, const std::string& x, std::vector<float> scale,
                            std::vector<float> shift) {
  const int ch = infos_[v].c;
  if (scale.size() == 1) scale.assign(ch, scale[0]);
  if (shift.size() == 1) shift.assign(ch, shift[0]);
  const std::string& out = nodes_[id]->output(0);
  if (Foldable(v, x, /*conv_only=*/true)) {
    EngineNode& e = engine_[v - 1];
    if (e.bias.empty()) e.bias.assign(e.out_c, 0.0f);
    const size_t per_out = e.weight.size() / e.out_c;
    for (int o = 0; o < e.out_c; ++o) {
      for (size_t j = 0; j < per_out; ++j) e.weight[o * per_out + j] *= scale[o];
      e.bias[o] = e.bias[o] * scale[o] + shift[o];
    }
    e.owner = out;
    values_[out] = v;
    return Status::Ok();
  }
  EngineNode d;
  d.name = NodeName(*nodes_[id]);
  d.op = "conv2d";
  d.inputs = {v};
  d.groups = ch;
  d.out_c = ch;
  d.weight = std::move(scale);
  d.bias = std::move(shift);
  d.owner = out;
  values_[out] = AddNode(std::move(d), infos_[v]);
  return Status::Ok();
}

// A constant broadcast against a value: a scalar, or one value per channel
// (ONNX's NCHW broadcasting: every axis but the channel axis has size 1).
Status Importer::PerChannel(int id, const Constant& c, const ValueInfo& info,
                            std::vector<float>* out) const {
  if (c.is_int) return Unsupported(id, "an integer constant operand");
  if (c.elements == 1 && c.dims.size() <= static_cast<size_t>(info.rank)) {
    *out = {c.f[0]};
    return Status::Ok();
  }
  bool ok = c.dims.size() <= static_cast<size_t>(info.rank) && c.elements == info.c;
  for (size_t k = 0; ok && k < c.dims.size(); ++k) {
    const size_t axis = info.rank - c.dims.size() + k;  // right-aligned
    ok = c.dims[k] == 1 || (axis == 1 && c.dims[k] == info.c);
  }
  if (!ok) {
    return Unsupported(id, "the constant operand of shape " + DimsString(c.dims) +
                               " is neither a scalar nor one value per channel (" +
                               std::to_string(info.c) + " channels, axis 1)");
  }
  *out = c.f;
  return Status::Ok();
}

// Window geometry of a conv / pool node from auto_pad, pads, strides,
// dilations (already in `e`) and ceil_mode; fills the pads and the output.
Status Importer::Window(int id, const ValueInfo& in, int kh, int kw, bool ceil_mode, EngineNode* e,
                        ValueInfo* out) {
  std::string auto_pad;
  FLAWLENS_RETURN_IF_ERROR(AttrString(id, "auto_pad", "NOTSET", &auto_pad));
  std::vector<int64_t> pads;
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "pads", &pads));
  if (!pads.empty() && pads.size() != 4)
    return Unsupported(id, "'pads' has " + std::to_string(pads.size()) + " values (2-D: 4)");
  for (int64_t p : pads) {
    if (p < 0 || p > kMaxPad)
      return Fail(id, ErrorCode::kLimitExceeded,
                  "a pad is outside [0, " + std::to_string(kMaxPad) + "]");
  }
  const int k[2] = {kh, kw}, s[2] = {e->sh, e->sw}, d[2] = {e->dh, e->dw}, size[2] = {in.h, in.w};
  int before[2] = {0, 0}, after[2] = {0, 0}, o[2] = {0, 0};
  for (int a = 0; a < 2; ++a) {
    const int64_t eff = int64_t{d[a]} * (k[a] - 1) + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t n = (int64_t{size[a]} + s[a] - 1) / s[a];
      const int64_t total = std::max<int64_t>((n - 1) * s[a] + eff - size[a], 0);
      const int64_t small = total / 2, large = total - small;
      before[a] = static_cast<int>(auto_pad == "SAME_UPPER" ? small : large);
      after[a] = static_cast<int>(auto_pad == "SAME_UPPER" ? large : small);
      o[a] = static_cast<int>(n);
      continue;
    }
    if (auto_pad == "NOTSET") {
      if (!pads.empty()) {
        before[a] = static_cast<int>(pads[a]);
        after[a] = static_cast<int>(pads[a + 2]);
      }
    } else if (auto_pad != "VALID") {
      return Unsupported(id, "auto_pad '" + Printable(auto_pad) + "'");
    }
    const int64_t span = int64_t{size[a]} + before[a] + after[a] - eff;
    if (span < 0) {
      return Fail(id, ErrorCode::kBadShape,
                  "the input " + std::to_string(in.w) + "x" + std::to_string(in.h) +
                      " is too small for its window; choose a larger --input");
    }
    int64_t n = span / s[a] + 1;
    if (ceil_mode && span % s[a] != 0) {
      // ceil((span) / s) + 1: the last window reaches past the padding; the
      // extra rows / columns join the end padding (they never win a max and
      // are not counted by an average without count_include_pad).
      n = span / s[a] + 2;
      after[a] += static_cast<int>((n - 1) * s[a] + eff - (size[a] + before[a] + after[a]));
    }
    o[a] = static_cast<int>(n);
  }
  if (o[0] < 1 || o[1] < 1) return Fail(id, ErrorCode::kBadShape, "the output would be empty");
  for (int a = 0; a < 2; ++a) {
    if (before[a] > kMaxPad || after[a] > kMaxPad)
      return Fail(id, ErrorCode::kLimitExceeded,
                  "padding above " + std::to_string(kMaxPad) + " (auto_pad)");
  }
  e->pt = before[0];
  e->pb = after[0];
  e->pl = before[1];
  e->pr = after[1];
  *out = in;
  out->h = o[0];
  out->w = o[1];
  out->stride_h = in.stride_h * e->sh;
  out->stride_w = in.stride_w * e->sw;
  return Status::Ok();
}

// Strides / dilations / kernel_shape attributes of a 2-D window op.
Status WindowAttrs(const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                   std::string* why, EngineNode* e) {
  if (!strides.empty() && strides.size() != 2) {
    *why = "'strides' has " + std::to_string(strides.size()) + " values (2-D: 2)";
    return Status(ErrorCode::kUnsupported, "");
  }
  if (!dilations.empty() && dilations.size() != 2) {
    *why = "'dilations' has " + std::to_string(dilations.size()) + " values (2-D: 2)";
    return Status(ErrorCode::kUnsupported, "");
  }
  for (int64_t s : strides) {
    if (s < 1 || s > kMaxStride) {
      *why = "a stride is outside [1, " + std::to_string(kMaxStride) + "]";
      return Status(ErrorCode::kLimitExceeded, "");
    }
  }
  for (int64_t d : dilations) {
    if (d < 1 || d > kMaxDilation) {
      *why = "a dilation is outside [1, " + std::to_string(kMaxDilation) + "]";
      return Status(ErrorCode::kLimitExceeded, "");
    }
  }
  if (!strides.empty()) {
    e->sh = static_cast<int>(strides[0]);
    e->sw = static_cast<int>(strides[1]);
  }
  if (!dilations.empty()) {
    e->dh = static_cast<int>(dilations[0]);
    e->dw = static_cast<int>(dilations[1]);
  }
  return Status::Ok();
}

Status Importer::EmitConv(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  FLAWLENS_RETURN_IF_ERROR(
      CheckAttributes(id, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}));
  if (n.input_size() < 2 || n.input_size() > 3)
    return Fail(id, ErrorCode::kBadGraph, "Conv needs 2 or 3 inputs");
  const std::string x = Resolve(n.input(0));
  const int v = ValueOf(x);
  if (v < 0)
    return Unsupported(id,
                       "its input '" + Printable(x) + "' is not a tensor this importer computes");
  const ValueInfo in = infos_[v];
  if (in.rank != 4) return Unsupported(id, "its input is not a 4-D NCHW tensor");
  const std::string wname = Resolve(n.input(1));
  if (!IsConst(wname))
    return Unsupported(id, "the weight '" + Printable(wname) + "' is not a constant");
  Result<const Constant*> wr = ConstOf(wname);
  if (!wr.ok()) return wr.status();
  const Constant& w = **wr;
  if (w.is_int || w.dims.size() != 4)
    return Unsupported(id, "the weight must be a float tensor [out, in / group, kh, kw] (2-D)");
  if (std::any_of(w.dims.begin(), w.dims.end(), [](int64_t d) { return d < 1; }))
    return Fail(id, ErrorCode::kBadShape, "the weight has an empty dimension");
  int64_t group = 1;
  FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "group", 1, &group));
  std::vector<int64_t> kernel, strides, dilations;
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "kernel_shape", &kernel));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "strides", &strides));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "dilations", &dilations));
  if (!kernel.empty() && (kernel.size() != 2 || kernel[0] != w.dims[2] || kernel[1] != w.dims[3])) {
    return Fail(
        id, ErrorCode::kBadShape,
        "kernel_shape " + DimsString(kernel) + " disagrees with the weight " + DimsString(w.dims));
  }
  if (w.dims[2] > kMaxKernel || w.dims[3] > kMaxKernel)
    return Fail(id, ErrorCode::kLimitExceeded, "kernel above " + std::to_string(kMaxKernel));
  if (w.dims[0] > kMaxChannels)
    return Fail(id, ErrorCode::kLimitExceeded,
                "more than " + std::to_string(kMaxChannels) + " output channels");
  if (group < 1 || group > kMaxChannels || in.c != w.dims[1] * group || w.dims[0] % group != 0) {
    return Fail(id, ErrorCode::kBadShape,
                "the weight " + DimsString(w.dims) + " with group " + std::to_string(group) +
                    " does not fit an input of " + std::to_string(in.c) + " channels");
  }
  EngineNode e;
  e.name = NodeName(n);
  e.op = "conv2d";
  e.inputs = {v};
  std::string why;
  Status st = WindowAttrs(strides, dilations, &why, &e);
  if (!st.ok())
    return st.code() == ErrorCode::kUnsupported ? Unsupported(id, why) : Fail(id, st.code(), why);
  const int out_c = static_cast<int>(w.dims[0]), kh = static_cast<int>(w.dims[2]),
            kw = static_cast<int>(w.dims[3]), wi = static_cast<int>(w.dims[1]);
  e.kh = kh;
  e.kw = kw;
  e.groups = static_cast<int>(group);
  e.out_c = out_c;
  ValueInfo out;
  FLAWLENS_RETURN_IF_ERROR(Window(id, in, kh, kw, false, &e, &out));
  out.c = out_c;
  e.weight.resize(w.f.size());
  // OIHW -> OHWI.
  for (int o = 0; o < out_c; ++o)
    for (int i = 0; i < wi; ++i)
      for (int y = 0; y < kh; ++y)
        for (int xx = 0; xx < kw; ++xx)
          e.weight[((int64_t{o} * kh + y) * kw + xx) * wi + i] =
              w.f[((int64_t{o} * wi + i) * kh + y) * kw + xx];
  if (n.input_size() == 3 && !n.input(2).empty()) {
    const std::string bname = Resolve(n.input(2));
    if (!IsConst(bname))
      return Unsupported(id, "the bias '" + Printable(bname) + "' is not a constant");
    Result<const Constant*> b = ConstOf(bname);
    if (!b.ok()) return b.status();
    if ((*b)->is_int || (*b)->elements != out_c || (*b)->dims.size() != 1)
      return Fail(id, ErrorCode::kBadShape,
                  "the bias must be a float vector of " + std::to_string(out_c) + " values");
    e.bias = (*b)->f;
  }
  e.owner = n.output(0);
  values_[n.output(0)] = AddNode(std::move(e), out);
  return Status::Ok();
}

Status Importer::EmitPool(int id, bool max) {
  const onnx::NodeProto& n = *nodes_[id];
  if (max) {
    FLAWLENS_RETURN_IF_ERROR(
        CheckAttributes(id, {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                             "storage_order", "strides"}));
  } else {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(
        id, {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"}));
  }
  if (n.input_size() != 1) return Fail(id, ErrorCode::kBadGraph, "expected one input");
  if (n.output_size() > 1 && !n.output(1).empty() && consumers_.count(n.output(1)))
    return Unsupported(id, "its Indices output is used");
  const std::string x = Resolve(n.input(0));
  const int v = ValueOf(x);
  if (v < 0)
    return Unsupported(id,
                       "its input '" + Printable(x) + "' is not a tensor this importer computes");
  const ValueInfo in = infos_[v];
  if (in.rank != 4) return Unsupported(id, "its input is not a 4-D NCHW tensor");
  std::vector<int64_t> kernel, strides, dilations;
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "kernel_shape", &kernel));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "strides", &strides));
  FLAWLENS_RETURN_IF_ERROR(AttrInts(id, "dilations", &dilations));
  if (kernel.size() != 2) return Unsupported(id, "kernel_shape must have 2 values (2-D pooling)");
  if (kernel[0] < 1 || kernel[1] < 1 || kernel[0] > kMaxKernel || kernel[1] > kMaxKernel)
    return Fail(id, ErrorCode::kLimitExceeded,
                "kernel_shape outside [1, " + std::to_string(kMaxKernel) + "]");
  int64_t ceil_mode = 0, count_include_pad = 0;
  FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "ceil_mode", 0, &ceil_mode));
  FLAWLENS_RETURN_IF_ERROR(AttrInt(id, "count_include_pad", 0, &count_include_pad));
  EngineNode e;
  e.name = NodeName(n);
  e.op = max ? "maxpool2d" : "avgpool2d";
  e.inputs = {v};
  e.kh = static_cast<int>(kernel[0]);
  e.kw = static_cast<int>(kernel[1]);
  std::string why;
  Status st = WindowAttrs(strides, dilations, &why, &e);
  if (!st.ok())
    return st.code() == ErrorCode::kUnsupported ? Unsupported(id, why) : Fail(id, st.code(), why);
  ValueInfo out;
  // Without ceil_mode first: the end padding ceil_mode adds is then known.
  EngineNode plain = e;
  ValueInfo plain_out;
  FLAWLENS_RETURN_IF_ERROR(Window(id, in, e.kh, e.kw, false, &plain, &plain_out));
  FLAWLENS_RETURN_IF_ERROR(Window(id, in, e.kh, e.kw, ceil_mode != 0, &e, &out));
  const bool ceil_extra = e.pb != plain.pb || e.pr != plain.pr;
  if (!max && count_include_pad && ceil_extra) {
    return Unsupported(id,
                       "ceil_mode adds a partial last window, which ONNX averages over the "
                       "padded input only and the engine over the whole window");
  }
  const int64_t eff_h = int64_t{e.dh} * (e.kh - 1) + 1, eff_w = int64_t{e.dw} * (e.kw - 1) + 1;
  if (2 * int64_t{e.pt} > eff_h || 2 * int64_t{e.pb} > eff_h || 2 * int64_t{e.pl} > eff_w ||
      2 * int64_t{e.pr} > eff_w) {
    return Unsupported(id, "padding of more than half the window (pads [" + std::to_string(e.pt) +
                               ", " + std::to_string(e.pl) + ", " + std::to_string(e.pb) + ", " +
                               std::to_string(e.pr) + "]" + (ceil_extra ? " with ceil_mode" : "") +
                               "): a window could lie entirely in the padding");
  }
  e.count_include_pad = count_include_pad != 0;
  e.owner = n.output(0);
  values_[n.output(0)] = AddNode(std::move(e), out);
  return Status::Ok();
}

Status Importer::EmitResize(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  if (n.op_type() == "Upsample") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"mode", "scales"}));
  } else {
    FLAWLENS_RETURN_IF_ERROR(
        CheckAttributes(id, {"mode", "coordinate_transformation_mode", "nearest_mode",
                             "cubic_coeff_a", "exclude_outside", "extrapolation_value"}));
  }
  if (n.input_size() < 1) return Fail(id, ErrorCode::kBadGraph, "Resize needs an input");
  const std::string x = Resolve(n.input(0));
  const int v = ValueOf(x);
  if (v < 0)
    return Unsupported(id,
                       "its input '" + Printable(x) + "' is not a tensor this importer computes");
  const ValueInfo in = infos_[v];
  if (in.rank != 4) return Unsupported(id, "its input is not a 4-D NCHW tensor");
  std::string mode, ctm, nearest;
  FLAWLENS_RETURN_IF_ERROR(AttrString(id, "mode", "nearest", &mode));
  // Resize-10 and Upsample map output to input pixels as x / scale, rounding
  // nearest down.
  const bool legacy = n.op_type() == "Upsample" || opset_ < 11;
  FLAWLENS_RETURN_IF_ERROR(
      AttrString(id, "coordinate_transformation_mode", legacy ? "asymmetric" : "half_pixel", &ctm));
  FLAWLENS_RETURN_IF_ERROR(
      AttrString(id, "nearest_mode", legacy ? "floor" : "round_prefer_floor", &nearest));
  // Output size from `scales` (input 2) or `sizes` (input 3); Resize-10 and
  // Upsample-9 have only scales, at input 1; Upsample-7 has them as attribute.
  const bool upsample = n.op_type() == "Upsample";
  const int first = upsample || opset_ < 11 ? 1 : 2, last = upsample || opset_ < 11 ? 1 : 3;
  int64_t oh = -1, ow = -1;
  if (const onnx::AttributeProto* a = Attr(id, "scales"); a && upsample) {
    if (a->floats_size() != 4 || a->floats(0) != 1.0f || a->floats(1) != 1.0f)
      return Unsupported(id, "scales other than [1, 1, sh, sw]");
    for (int k = 2; k < 4; ++k) {
      if (!(a->floats(k) >= 1.0f && a->floats(k) <= kMaxModelInputSide) ||
          a->floats(k) != std::floor(a->floats(k)))
        return Unsupported(id, "a non-integer scale (the engine upsamples by integer factors)");
    }
    oh = in.h * static_cast<int64_t>(a->floats(2));
    ow = in.w * static_cast<int64_t>(a->floats(3));
  }
  for (int slot = first; slot <= last; ++slot) {
    if (n.input_size() <= slot || n.input(slot).empty()) continue;
    const std::string name = Resolve(n.input(slot));
    if (!IsConst(name))
      return Unsupported(id, "its " + std::string(slot < 3 ? "scales" : "sizes") +
                                 " are computed at run time, not a constant");
    Result<const Constant*> c = ConstOf(name);
    if (!c.ok()) return c.status();
    if ((*c)->elements == 0) continue;  // an empty tensor: not given
    if ((*c)->elements != 4)
      return Fail(id, ErrorCode::kBadShape, "scales / sizes need 4 values (N, C, H, W)");
    if (slot < 3) {
      if ((*c)->is_int) return Fail(id, ErrorCode::kBadGraph, "scales are not floats");
      const std::vector<float>& s = (*c)->f;
      if (s[0] != 1.0f || s[1] != 1.0f) return Unsupported(id, "scaling the batch or channel axis");
      for (int a = 0; a < 2; ++a) {
        const float f = s[2 + a];
        if (!(f >= 1.0f && f <= kMaxModelInputSide) || f != std::floor(f)) {
          return Unsupported(
              id, "scale " + std::to_string(f) + " (the engine upsamples by integer factors >= 1)");
        }
      }
      oh = in.h * static_cast<int64_t>(s[2]);
      ow = in.w * static_cast<int64_t>(s[3]);
    } else {
      if (!(*c)->is_int) return Fail(id, ErrorCode::kBadGraph, "sizes are not integers");
      const std::vector<int64_t>& s = (*c)->i;
      if (s[0] != 1 || s[1] != in.c) return Unsupported(id, "resizing the batch or channel axis");
      oh = s[2];
      ow = s[3];
    }
  }
  if (oh < 0) return Fail(id, ErrorCode::kBadGraph, "Resize has neither scales nor sizes");
  if (oh < in.h || ow < in.w || oh % in.h != 0 || ow % in.w != 0 ||
      oh / in.h > kMaxModelInputSide || ow / in.w > kMaxModelInputSide) {
    return Unsupported(id, "resizing " + std::to_string(in.w) + "x" + std::to_string(in.h) +
                               " to " + std::to_string(ow) + "x" + std::to_string(oh) +
                               " (the engine upsamples by integer factors)");
  }
  const int fh = static_cast<int>(oh / in.h), fw = static_cast<int>(ow / in.w);
  const std::string& out_name = n.output(0);
  if (fh == 1 && fw == 1) {
    values_[out_name] = v;
    return Status::Ok();
  }
  std::string engine_mode;
  if (mode == "nearest") {
    // With an integer factor every output pixel copies the input pixel it
    // lies in when coordinates are half-pixel (any rounding) or asymmetric
    // rounded down; other combinations pick a neighbour instead.
    const bool half = ctm == "half_pixel" || ctm == "pytorch_half_pixel";
    const bool asym_floor = ctm == "asymmetric" && nearest == "floor";
    const bool rounding = nearest == "round_prefer_floor" || nearest == "round_prefer_ceil";
    if (!((half && rounding) || asym_floor)) {
      return Unsupported(id, "nearest with coordinate_transformation_mode '" + Printable(ctm) +
                                 "' and nearest_mode '" + Printable(nearest) + "'");
    }
    engine_mode = "nearest";
  } else if (mode == "linear") {
    if (ctm != "half_pixel" && ctm != "pytorch_half_pixel") {
      return Unsupported(id, "linear with coordinate_transformation_mode '" + Printable(ctm) +
                                 "' (the engine: half_pixel, i.e. align_corners=False)");
    }
    engine_mode = "bilinear";
  } else {
    return Unsupported(id, "mode '" + Printable(mode) + "' (nearest, linear)");
  }
  EngineNode e;
  e.name = NodeName(n);
  e.op = "upsample";
  e.inputs = {v};
  e.mode = engine_mode;
  e.scale_h = fh;
  e.scale_w = fw;
  e.owner = out_name;
  ValueInfo out = in;
  out.h = static_cast<int>(oh);
  out.w = static_cast<int>(ow);
  values_[out_name] = AddNode(std::move(e), out);
  return Status::Ok();
}

Status Importer::EmitBinary(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  const std::string& op = n.op_type();
  FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {}));
  if (n.input_size() != 2) return Fail(id, ErrorCode::kBadGraph, "expected two inputs");
  std::string names[2];
  int vals[2];
  for (int k = 0; k < 2; ++k) {
    names[k] = Resolve(n.input(k));
    vals[k] = IsConst(names[k]) ? -1 : ValueOf(names[k]);
    if (!IsConst(names[k]) && vals[k] < 0) {
      return Unsupported(
          id, "its input '" + Printable(names[k]) + "' is not a tensor this importer computes");
    }
  }
  const bool multiply = op == "Mul";
  if (vals[0] >= 0 && vals[1] >= 0) {
    if (op == "Sub" || op == "Div") return Unsupported(id, "two tensor operands");
    const ValueInfo& a = infos_[vals[0]];
    const ValueInfo& b = infos_[vals[1]];
    int first = vals[0], second = vals[1];
    const bool same = a.h == b.h && a.w == b.w && a.c == b.c && a.rank == b.rank;
    if (!same) {
      const bool b_gate = multiply && b.h == 1 && b.w == 1 && b.c == a.c && b.rank == 4;
      const bool a_gate = multiply && a.h == 1 && a.w == 1 && a.c == b.c && a.rank == 4;
      if (a_gate && !b_gate) std::swap(first, second);
      if (!a_gate && !b_gate) {
        return Unsupported(id, "operand shapes " + std::to_string(a.c) + "x" + std::to_string(a.h) +
                                   "x" + std::to_string(a.w) + " and " + std::to_string(b.c) + "x" +
                                   std::to_string(b.h) + "x" + std::to_string(b.w) +
                                   " (C x H x W) differ" +
                                   (multiply ? " and neither is a Cx1x1 gate" : ""));
      }
    }
    EngineNode e;
    e.name = NodeName(n);
    e.op = multiply ? "mul" : "add";
    e.inputs = {first, second};
    e.owner = n.output(0);
    ValueInfo info = infos_[first];
    info.stride_h = std::max(infos_[first].stride_h, infos_[second].stride_h);
    info.stride_w = std::max(infos_[first].stride_w, infos_[second].stride_w);
    values_[n.output(0)] = AddNode(std::move(e), info);
    return Status::Ok();
  }
  const int t = vals[0] >= 0 ? 0 : vals[1] >= 0 ? 1 : -1;
  if (t < 0) return Unsupported(id, "both operands are constants");
  Result<const Constant*> c = ConstOf(names[1 - t]);
  if (!c.ok()) return c.status();
  std::vector<float> k;
  FLAWLENS_RETURN_IF_ERROR(PerChannel(id, **c, infos_[vals[t]], &k));
  std::vector<float> scale(k.size(), 1.0f), shift(k.size(), 0.0f);
  for (size_t j = 0; j < k.size(); ++j) {
    if (op == "Add") {
      shift[j] = k[j];
    } else if (op == "Sub") {
      scale[j] = t == 0 ? 1.0f : -1.0f;
      shift[j] = t == 0 ? -k[j] : k[j];
    } else if (op == "Mul") {
      scale[j] = k[j];
    } else {  // Div
      if (t != 0) return Unsupported(id, "dividing a constant by a tensor");
      if (k[j] == 0.0f) return Fail(id, ErrorCode::kBadGraph, "division by a zero constant");
      scale[j] = 1.0f / k[j];
    }
  }
  return EmitAffine(id, vals[t], names[t], std::move(scale), std::move(shift));
}

Status Importer::EmitClip(int id) {
  const onnx::NodeProto& n = *nodes_[id];
  // Before opset 11 the bounds are attributes, from 11 on optional inputs.
  const bool attrs = opset_ < 11;
  FLAWLENS_RETURN_IF_ERROR(attrs ? CheckAttributes(id, {"min", "max"}) : CheckAttributes(id, {}));
  if (n.input_size() < 1 || n.input_size() > (attrs ? 1 : 3))
    return Fail(id, ErrorCode::kBadGraph, "Clip has " + std::to_string(n.input_size()) + " inputs");
  const std::string x = Resolve(n.input(0));
  const int v = ValueOf(x);
  if (v < 0)
    return Unsupported(id,
                       "its input '" + Printable(x) + "' is not a tensor this importer computes");
  float bound[2] = {-INFINITY, INFINITY};
  if (attrs) {
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "min", -INFINITY, &bound[0]));
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "max", INFINITY, &bound[1]));
  }
  for (int k = 1; k < n.input_size(); ++k) {
    if (n.input(k).empty()) continue;
    const std::string name = Resolve(n.input(k));
    if (!IsConst(name)) return Unsupported(id, "its min / max are not constants");
    Result<const Constant*> c = ConstOf(name);
    if (!c.ok()) return c.status();
    if ((*c)->is_int || (*c)->elements != 1)
      return Fail(id, ErrorCode::kBadGraph, "min / max must be float scalars");
    bound[k - 1] = (*c)->f[0];
  }
  const std::string& out = n.output(0);
  if (bound[0] == -INFINITY && bound[1] == INFINITY) {
    values_[out] = v;
    return Status::Ok();
  }
  if (bound[0] == 0.0f && bound[1] == 6.0f) {
    values_[out] = ApplyActivation(id, v, x, "relu6", 0.0f);
  } else if (bound[0] == 0.0f && bound[1] == INFINITY) {
    values_[out] = ApplyActivation(id, v, x, "relu", 0.0f);
  } else {
    return Unsupported(id, "Clip to [" + std::to_string(bound[0]) + ", " +
                               std::to_string(bound[1]) + "] (the engine: [0, 6] or [0, inf))");
  }
  return Status::Ok();
}

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
  ValueInfo& info = infos_[0];
  info.h = h;
  info.w = w;
  info.c = static_cast<int>(c);
  values_[name] = 0;
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
    if (!in.empty() && graph_inputs_.count(r) && !values_.count(r))
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
    const int v = ValueOf(pattern->second.x);
    if (v < 0)
      return Unsupported(id, "its input '" + Printable(pattern->second.x) +
                                 "' is not a tensor this importer computes");
    const bool silu = pattern->second.kind == PatternKind::kSilu;
    values_[out] = ApplyActivation(id, v, pattern->second.x, silu ? "silu" : "hard_swish",
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
      const int v = ValueOf(r);
      if (v < 0 || IsConst(r))
        return Unsupported(
            id, "its input '" + Printable(r) + "' is not a tensor this importer computes");
      const ValueInfo& vi = infos_[v];
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
      values_[out] = vals[0];
      return Status::Ok();
    }
    EngineNode e;
    e.name = NodeName(n);
    e.op = "concat";
    e.inputs = vals;
    e.owner = out;
    values_[out] = AddNode(std::move(e), info);
    return Status::Ok();
  }
  if (n.input_size() < 1) return Fail(id, ErrorCode::kBadGraph, "the node has no input");
  const std::string x = Resolve(n.input(0));
  const int v = ValueOf(x);
  if (v < 0 || IsConst(x))
    return Unsupported(id,
                       "its input '" + Printable(x) + "' is not a tensor this importer computes");
  const ValueInfo in = infos_[v];
  if (op == "Relu" || op == "Sigmoid") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {}));
    values_[out] = ApplyActivation(id, v, x, op == "Relu" ? "relu" : "sigmoid", 0.0f);
    return Status::Ok();
  }
  if (op == "LeakyRelu") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {"alpha"}));
    float alpha = 0.01f;
    FLAWLENS_RETURN_IF_ERROR(AttrFloat(id, "alpha", 0.01f, &alpha));
    if (!std::isfinite(alpha)) return Fail(id, ErrorCode::kNonFinite, "alpha is not finite");
    values_[out] = ApplyActivation(id, v, x, "leaky_relu", alpha);
    return Status::Ok();
  }
  if (op == "HardSwish") {
    FLAWLENS_RETURN_IF_ERROR(CheckAttributes(id, {}));
    values_[out] = ApplyActivation(id, v, x, "hard_swish", 1.0f / 6.0f);
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
      values_[out] = ApplyActivation(id, v, x, "hard_sigmoid", alpha);
      return Status::Ok();
    }
    // clamp(alpha x + beta, 0, 1) = relu6(z + 3) / 6 with z = 6 alpha x + 6 beta - 3.
    const std::string pre = out + "/affine";
    consumers_[pre] = 1;
    FLAWLENS_RETURN_IF_ERROR(EmitAffine(id, v, x, {6.0f * alpha}, {6.0f * beta - 3.0f}));
    const int z = values_[out];
    engine_[z - 1].owner = pre;
    values_[out] = ApplyActivation(id, z, pre, "hard_sigmoid", 1.0f / 6.0f);
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
      e.op = "global_avgpool";
    } else {
      if (in.h > kMaxKernel || in.w > kMaxKernel)
        return Unsupported(
            id, "a global max over more than " + std::to_string(kMaxKernel) + " rows or columns");
      e.op = "maxpool2d";
      e.kh = in.h;
      e.kw = in.w;
    }
    ValueInfo info = in;
    info.h = info.w = 1;
    values_[out] = AddNode(std::move(e), info);
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
    e.op = "global_avgpool";
    e.inputs = {v};
    e.owner = out;
    ValueInfo info = in;
    info.h = info.w = 1;
    if (!keep) info.rank = 2;
    values_[out] = AddNode(std::move(e), info);
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
    e.op = "global_avgpool";
    e.inputs = {v};
    e.owner = out;
    values_[out] = AddNode(std::move(e), info);
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
    if (!n.output(k).empty() && consumers_.count(n.output(k)))
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

// ---- writing ------------------------------------------------------------------
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
    if (e.op == "conv2d" || e.op == "maxpool2d" || e.op == "avgpool2d") {
      j["kernel"] = {e.kh, e.kw};
      j["stride"] = {e.sh, e.sw};
      if (e.op != "avgpool2d") j["dilation"] = {e.dh, e.dw};
      j["pad"] = {e.pt, e.pl, e.pb, e.pr};
    }
    if (e.op == "avgpool2d") j["count_include_pad"] = e.count_include_pad;
    if (e.op == "conv2d") {
      j["out_channels"] = e.out_c;
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
    if (e.op == "conv2d" || e.op == "activation" || e.op == "add" || e.op == "mul") {
      if (e.op != "activation" || e.activation != "none") j["activation"] = e.activation;
      if (e.activation == "leaky_relu" || e.activation == "hard_swish" ||
          e.activation == "hard_sigmoid") {
        j["alpha"] = static_cast<double>(e.alpha);
      }
    }
    if (e.op == "upsample") {
      j["mode"] = e.mode;
      j["scale"] = {e.scale_h, e.scale_w};
    }
    nodes.push_back(std::move(j));
  }
  graph["nodes"] = std::move(nodes);
  graph["output"] = value_name(output);
  return Dump(graph);
}

std::string Importer::CardJson(const ImportResult& result) const {
  ojson card;
  card["name"] = options_.name.empty() ? model_.graph().name() : options_.name;
  card["kind"] = "backbone";
  card["description"] = "Frozen features imported from an ONNX model";
  ojson origin;
  origin["source"] = options_.origin;
  origin["producer"] = model_.producer_name() +
                       (model_.producer_version().empty() ? "" : " " + model_.producer_version());
  origin["opset"] = opset_;
  card["origin"] = origin;
  card["licence"] = options_.licence;
  card["input"] = {{"w", infos_[0].w}, {"h", infos_[0].h}, {"c", infos_[0].c}};
  ojson features = ojson::array();
  for (const FeatureLayer& f : result.features) {
    ojson j;
    j["node"] = f.tensor;
    j["stride"] = f.stride_h == f.stride_w ? ojson(f.stride_h) : ojson({f.stride_h, f.stride_w});
    j["channels"] = f.channels;
    j["h"] = f.h;
    j["w"] = f.w;
    j["offset"] = f.offset;
    features.push_back(std::move(j));
  }
  card["features"] = features;
  card["output"] = {{"h", result.out_h}, {"w", result.out_w}, {"c", result.out_c}};
  card["imported_by"] = "flawlens import-onnx";
  return Dump(card);
}

Result<ImportResult> Importer::Finish() {
  ImportResult result;
  std::vector<int> outs;
  int finest = -1;
  for (const std::string& o : options_.outputs) {
    const int v = ValueOf(Resolve(o));
    if (v < 0) return Error(ErrorCode::kInternal, "output '" + Printable(o) + "' was not computed");
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
    layer.tensor = options_.outputs[k];
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
                     "output '" + Printable(layer.tensor) + "' is " + std::to_string(info.w) + "x" +
                         std::to_string(info.h) +
                         ", not an integer fraction of the finest output " +
                         std::to_string(target.w) + "x" + std::to_string(target.h) +
                         "; choose an --input divisible by the largest stride");
      }
      EngineNode up;
      up.name = options_.outputs[k] + "/upsample";
      up.op = "upsample";
      up.mode = "bilinear";
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
      return Error(ErrorCode::kLimitExceeded,
                   "the outputs have more than " + std::to_string(kMaxChannels) + " channels");
    EngineNode cat;
    cat.name = "features";
    cat.op = "concat";
    cat.inputs = parts;
    ValueInfo info = target;
    info.c = offset;
    output = AddNode(std::move(cat), info);
  }
  result.in_w = infos_[0].w;
  result.in_h = infos_[0].h;
  result.in_c = infos_[0].c;
  result.out_h = infos_[output].h;
  result.out_w = infos_[output].w;
  result.out_c = infos_[output].c;
  result.opset = opset_;
  result.spec.graph_json = GraphJson(output, &result.spec.tensors);

  PreprocessConfig pre;
  pre.resize_w = infos_[0].w;
  pre.resize_h = infos_[0].h;
  pre.channels = infos_[0].c;
  pre.scale = options_.scale;
  for (int c = 0; c < 3; ++c) {
    pre.mean[c] = options_.mean[c];
    pre.std[c] = options_.std[c];
  }
  Status valid = pre.Validate();
  if (!valid.ok()) return Error(valid.code(), "preprocess: " + valid.message());
  result.spec.preprocess_json = PreprocessToJson(pre);
  result.spec.card_json = CardJson(result);
  result.onnx_nodes_used = 0;
  for (int id : order_) result.onnx_nodes_used += nodes_[id]->op_type() != "Constant";
  result.engine_nodes = static_cast<int>(engine_.size());
  return result;
}

Result<ImportResult> Importer::Run(const uint8_t* data, size_t size) {
  if (options_.outputs.empty())
    return Error(ErrorCode::kInvalidArgument, "no output tensor given (--outputs)");
  for (size_t i = 0; i < options_.outputs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options_.outputs[i] == options_.outputs[j]) {
        return Error(ErrorCode::kInvalidArgument,
                     "output '" + Printable(options_.outputs[i]) + "' is listed twice");
      }
    }
  }
  if ((options_.input_w == 0) != (options_.input_h == 0) || options_.input_w < 0 ||
      options_.input_h < 0 || options_.input_w > kMaxModelInputSide ||
      options_.input_h > kMaxModelInputSide) {
    return Error(ErrorCode::kInvalidArgument,
                 "input size must be in [1, " + std::to_string(kMaxModelInputSide) + "]");
  }
  if (size > kMaxOnnxBytes) {
    return Error(ErrorCode::kLimitExceeded,
                 "the model is larger than " + std::to_string(kMaxOnnxBytes) + " bytes");
  }
  if (size == 0) return Error(ErrorCode::kTruncated, "the model file is empty");
  if (!model_.ParseFromArray(data, static_cast<int>(size))) {
    return Error(ErrorCode::kBadHeader,
                 "not an ONNX model (the protobuf does not parse: truncated or corrupt)");
  }
  if (!model_.has_graph()) return Error(ErrorCode::kBadHeader, "the model has no graph");
  for (const onnx::OperatorSetIdProto& o : model_.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = o.version();
  }
  if (opset_ < 1 || opset_ > kMaxOpset) {
    return Error(ErrorCode::kUnsupported,
                 "opset " + std::to_string(opset_) + " (import-onnx reads opsets 1 to " +
                     std::to_string(kMaxOpset) + "; re-export with opset_version=17)");
  }
  FLAWLENS_RETURN_IF_ERROR(Index());
  FLAWLENS_RETURN_IF_ERROR(Walk());
  for (const std::string& o : options_.outputs) outputs_.insert(Resolve(o));
  for (const std::string& o : options_.outputs) {
    const std::string r = Resolve(o);
    if (IsConst(r))
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is a constant, not a feature map");
    if (graph_inputs_.count(r))
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is the network input itself");
  }
  FindPatterns();
  infos_.assign(1, ValueInfo{});
  for (int id : order_) {
    FLAWLENS_RETURN_IF_ERROR(Emit(id));
    if (engine_.size() > static_cast<size_t>(kMaxNodes)) {
      return Error(ErrorCode::kLimitExceeded,
                   "the imported graph has more than " + std::to_string(kMaxNodes) + " nodes");
    }
  }
  if (input_name_.empty())
    return Error(ErrorCode::kBadGraph, "no graph input on the path to the outputs");
  for (const std::string& o : options_.outputs) {
    const int v = ValueOf(Resolve(o));
    if (v < 0) {
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is a secondary output of " +
                       Label(producer_.at(Resolve(o))) +
                       ", which import-onnx does not compute (only a node's first output)");
    }
    if (v == 0) {
      return Error(ErrorCode::kUnsupported,
                   "output '" + Printable(o) + "' is the network input itself, not a feature map");
    }
  }
  return Finish();
}

}  // namespace

Result<ImportResult> ImportOnnx(const uint8_t* data, size_t size, const ImportOptions& options) {
  Result<ImportResult> result = Status(ErrorCode::kInternal, "import-onnx: not run");
  {
    auto importer = std::make_unique<Importer>(options);
    try {
      result = importer->Run(data, size);
    } catch (const std::exception& e) {
      // Allocation failure or a protobuf check: a backstop, never expected.
      return Error(ErrorCode::kBadHeader, std::string("malformed model: ") + e.what());
    }
  }
  if (!result.ok()) return result;
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

Result<ImportResult> ImportOnnxFile(const std::string& path, const ImportOptions& options) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return Error(ErrorCode::kInvalidArgument, "'" + path + "' cannot be opened");
  const std::streamoff size = f.tellg();
  if (size < 0) return Error(ErrorCode::kInvalidArgument, "'" + path + "' cannot be read");
  if (static_cast<uint64_t>(size) > kMaxOnnxBytes) {
    return Error(ErrorCode::kLimitExceeded,
                 "'" + path + "' is larger than " + std::to_string(kMaxOnnxBytes) + " bytes");
  }
  std::vector<uint8_t> data(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(data.data()), size))
    return Error(ErrorCode::kInvalidArgument, "'" + path + "' cannot be read");
  ImportOptions opts = options;
  if (opts.name.empty()) {
    const size_t slash = path.find_last_of('/');
    std::string stem = path.substr(slash == std::string::npos ? 0 : slash + 1);
    const size_t dot = stem.rfind('.');
    if (dot != std::string::npos && dot > 0) stem.resize(dot);
    opts.name = stem;
  }
  return ImportOnnx(data.data(), data.size(), opts);
}

Result<std::vector<TensorEntry>> ListOnnxTensors(const uint8_t* data, size_t size) {
  if (size > kMaxOnnxBytes)
    return Error(ErrorCode::kLimitExceeded,
                 "the model is larger than " + std::to_string(kMaxOnnxBytes) + " bytes");
  onnx::ModelProto model;
  if (size == 0 || !model.ParseFromArray(data, static_cast<int>(size)))
    return Error(ErrorCode::kBadHeader, "not an ONNX model (the protobuf does not parse)");
  std::vector<TensorEntry> out;
  for (const onnx::NodeProto& n : model.graph().node()) {
    if (n.op_type() == "Constant") continue;
    for (const std::string& t : n.output()) {
      if (!t.empty()) out.push_back({Printable(t), Printable(n.op_type()), Printable(n.name())});
    }
  }
  return out;
}

Status ParseChannelTriple(const std::string& text, const char* what, float out[3]) {
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
    return Error(ErrorCode::kInvalidArgument,
                 std::string(what) + " '" + text + "' must be one number or three (r,g,b)");
  }
  for (int c = 0; c < 3; ++c) out[c] = v[v.size() == 1 ? 0 : c];
  return Status::Ok();
}

}  // namespace flawlens::onnx_import
