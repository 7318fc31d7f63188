// LoadModel: safetensors container -> validated Model. Every field is checked
// before use (model/FORMAT.md "Validation"); nothing here reads out of bounds,
// throws or aborts on any input.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "core/limits.h"
#include "model/json_util.h"
#include "model/model.h"
#include "model/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "flawlens model files are little-endian; big-endian hosts are not supported"
#endif

namespace flawlens {

namespace {

struct RawTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t elements = 0;
  uint64_t begin = 0, end = 0;  // relative to the data region
  const float* data = nullptr;  // into Model::storage, after copy
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Truncates attacker-controlled strings quoted in messages.
std::string Q(const std::string& s) { return s.size() <= 80 ? s : s.substr(0, 77) + "..."; }

// ---- tensors -------------------------------------------------------------------

Status ParseTensorEntry(const std::string& name, const JsonValue& entry, RawTensor* t) {
  const std::string n = Q(name);
  if (name.empty()) return MakeError(ErrorCode::kBadHeader, "tensor with an empty name");
  if (!entry.is_object()) {
    return MakeError(ErrorCode::kBadHeader, "tensor '%s': entry must be a JSON object", n.c_str());
  }
  const JsonValue* dtype = FindMember(entry, "dtype");
  const JsonValue* shape = FindMember(entry, "shape");
  const JsonValue* offsets = FindMember(entry, "data_offsets");
  if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
    return MakeError(ErrorCode::kBadHeader,
                     "tensor '%s': needs \"dtype\", \"shape\" and \"data_offsets\"", n.c_str());
  }
  if (!dtype->is_string()) {
    return MakeError(ErrorCode::kBadHeader, "tensor '%s': dtype must be a string", n.c_str());
  }
  const std::string& dt = dtype->str();
  if (dt != "F32") {
    return MakeError(ErrorCode::kBadDtype, "tensor '%s': dtype '%s' is not supported (only F32)",
                     n.c_str(), Q(dt).c_str());
  }
  if (!shape->is_array()) {
    return MakeError(ErrorCode::kBadHeader, "tensor '%s': shape must be an array", n.c_str());
  }
  if (shape->size() > static_cast<size_t>(kMaxTensorRank)) {
    return MakeError(ErrorCode::kBadShape, "tensor '%s': rank %zu exceeds the limit %d",
                     n.c_str(), shape->size(), kMaxTensorRank);
  }
  t->name = name;
  t->shape.clear();
  int64_t elements = 1;
  for (size_t i = 0; i < shape->size(); ++i) {
    const JsonValue& d = (*shape)[i];
    int64_t dim = 0;
    if (!JsonToInt64(d, 1, kMaxTensorElements, &dim)) {
      return MakeError(ErrorCode::kBadShape,
                       "tensor '%s': dimension %zu is %s; must be an integer in [1, %lld]",
                       n.c_str(), i, DumpJson(d).substr(0, 32).c_str(),
                       static_cast<long long>(kMaxTensorElements));
    }
    if (!CheckedMul(elements, dim, &elements) || elements > kMaxTensorElements) {
      return MakeError(ErrorCode::kBadShape,
                       "tensor '%s': shape %s has more than %lld elements (limit)", n.c_str(),
                       DumpJson(*shape).substr(0, 64).c_str(),
                       static_cast<long long>(kMaxTensorElements));
    }
    t->shape.push_back(dim);
  }
  t->elements = elements;
  int64_t b = 0, e = 0;
  if (!offsets->is_array() || offsets->size() != 2 ||
      !JsonToInt64((*offsets)[0], 0, static_cast<int64_t>(kMaxModelBytes), &b) ||
      !JsonToInt64((*offsets)[1], 0, static_cast<int64_t>(kMaxModelBytes), &e)) {
    return MakeError(ErrorCode::kBadOffset,
                     "tensor '%s': data_offsets must be [begin, end] with integers in [0, %llu] "
                     "(got %s)",
                     n.c_str(), static_cast<unsigned long long>(kMaxModelBytes),
                     DumpJson(*offsets).substr(0, 64).c_str());
  }
  if (e < b || e - b != elements * 4) {
    return MakeError(ErrorCode::kBadOffset,
                     "tensor '%s': data_offsets [%lld, %lld] span %lld bytes, but shape %s of F32 "
                     "needs %lld",
                     n.c_str(), static_cast<long long>(b), static_cast<long long>(e),
                     static_cast<long long>(e - b), ShapeString(t->shape).c_str(),
                     static_cast<long long>(elements * 4));
  }
  t->begin = static_cast<uint64_t>(b);
  t->end = static_cast<uint64_t>(e);
  return Status::Ok();
}

// Tensors must tile the data region exactly: sorted by begin, no gap, no
// overlap, nothing after the last one (what the safetensors library checks).
Status CheckLayout(std::vector<RawTensor>& tensors, uint64_t data_size) {
  std::vector<const RawTensor*> order;
  order.reserve(tensors.size());
  for (const RawTensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const RawTensor* a, const RawTensor* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
  });
  uint64_t expected = 0;
  const RawTensor* prev = nullptr;
  for (const RawTensor* t : order) {
    if (t->begin < expected) {
      return MakeError(ErrorCode::kBadOffset,
                       "tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                       Q(t->name).c_str(), static_cast<unsigned long long>(t->begin),
                       static_cast<unsigned long long>(t->end), Q(prev->name).c_str(),
                       static_cast<unsigned long long>(prev->begin),
                       static_cast<unsigned long long>(prev->end));
    }
    if (t->begin > expected) {
      return MakeError(ErrorCode::kBadOffset,
                       "tensor '%s': data_offsets [%llu, %llu] leave a gap of %llu bytes after "
                       "byte %llu of the data region (%llu bytes)",
                       Q(t->name).c_str(), static_cast<unsigned long long>(t->begin),
                       static_cast<unsigned long long>(t->end),
                       static_cast<unsigned long long>(t->begin - expected),
                       static_cast<unsigned long long>(expected),
                       static_cast<unsigned long long>(data_size));
    }
    expected = t->end;
    prev = t;
  }
  if (expected > data_size) {
    return MakeError(ErrorCode::kTruncated,
                     "file is truncated: the tensors need %llu bytes of data, the file has %llu",
                     static_cast<unsigned long long>(expected),
                     static_cast<unsigned long long>(data_size));
  }
  if (expected < data_size) {
    return MakeError(ErrorCode::kBadOffset,
                     "%llu bytes after the last tensor (data region %llu bytes, tensors end at %llu)",
                     static_cast<unsigned long long>(data_size - expected),
                     static_cast<unsigned long long>(data_size),
                     static_cast<unsigned long long>(expected));
  }
  return Status::Ok();
}

// Copies a tensor into 16-byte-aligned storage owned by the model and checks
// that every value is finite.
Status CopyTensor(const uint8_t* data_region, RawTensor* t, Model* model) {
  const size_t n = static_cast<size_t>(t->elements);
  std::unique_ptr<float[]> block(new (std::nothrow) float[n + 4]);
  if (!block) {
    return MakeError(ErrorCode::kLimitExceeded, "tensor '%s': out of memory for %zu floats",
                     Q(t->name).c_str(), n);
  }
  const uintptr_t raw = reinterpret_cast<uintptr_t>(block.get());
  float* aligned = reinterpret_cast<float*>((raw + 15) & ~uintptr_t{15});
  std::memcpy(aligned, data_region + t->begin, n * sizeof(float));
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(aligned[i])) {
      return MakeError(ErrorCode::kNonFinite, "tensor '%s': element %zu is %s", Q(t->name).c_str(),
                       i, std::isnan(aligned[i]) ? "NaN" : (aligned[i] > 0 ? "+Inf" : "-Inf"));
    }
  }
  t->data = aligned;
  model->storage.push_back(std::move(block));
  return Status::Ok();
}

// ---- graph -----------------------------------------------------------------

using TensorMap = std::map<std::string, const RawTensor*>;

// Integer attributes are parsed in [lo, kAttrMax]; the documented limits
// (core/limits.h) are applied by Graph::Finalize, which reports values above
// them as kLimitExceeded.
constexpr int64_t kAttrMax = 1 << 16;

Status ResolveTensor(const JsonValue& node, const char* key, const std::string& ctx,
                     const TensorMap& tensors, TensorRef* ref, bool* present) {
  *present = false;
  std::string name;
  FLAWLENS_RETURN_IF_ERROR(GetString(node, key, ErrorCode::kBadGraph, ctx, &name));
  if (FindMember(node, key) == nullptr) return Status::Ok();
  auto it = tensors.find(name);
  if (it == tensors.end()) {
    return MakeError(ErrorCode::kBadGraph, "%s: %s tensor '%s' is not in the file", ctx.c_str(),
                     key, Q(name).c_str());
  }
  ref->data = it->second->data;
  ref->shape = it->second->shape;
  *present = true;
  return Status::Ok();
}

Status ParseActivationAttr(const JsonValue& node, const std::string& ctx, bool required, Node* out) {
  const JsonValue* a = FindMember(node, "activation");
  if (a == nullptr) {
    if (required) return MakeError(ErrorCode::kBadGraph, "%s: needs \"activation\"", ctx.c_str());
    return Status::Ok();
  }
  if (!a->is_string() || !ParseActivation(a->str(), &out->activation)) {
    return MakeError(ErrorCode::kBadGraph,
                     "%s: unknown activation %s (expected none, relu, leaky_relu, silu, "
                     "sigmoid, relu6, hard_swish, hard_sigmoid)",
                     ctx.c_str(), DumpJson(*a).substr(0, 40).c_str());
  }
  out->alpha = DefaultAlpha(out->activation);
  return GetFloat(node, "alpha", -1e6, 1e6, ErrorCode::kBadGraph, ctx, &out->alpha);
}

// The attributes of one op (everything but inputs, weights and activation).
Status ParseOpAttributes(const JsonValue& j, const std::string& ctx, Node* node) {
  constexpr ErrorCode kG = ErrorCode::kBadGraph;
  const std::vector<int64_t>& ws = node->weight.shape;

  switch (InfoOf(node->op).attrs) {
    case OpAttrs::kConv: {
      if (ws.size() != 4) {
        return MakeError(ErrorCode::kBadShape,
                         "%s: weight has shape %s, expected [out_c, kernel_h, kernel_w, in_c/groups]",
                         ctx.c_str(), ShapeString(ws).c_str());
      }
      // Defaults from the weight (which is at most kMaxTensorElements per dim).
      node->out_channels = static_cast<int>(std::min<int64_t>(ws[0], kMaxChannels + 1));
      node->kernel_h = static_cast<int>(std::min<int64_t>(ws[1], kMaxKernel + 1));
      node->kernel_w = static_cast<int>(std::min<int64_t>(ws[2], kMaxKernel + 1));
      FLAWLENS_RETURN_IF_ERROR(
          GetInt(j, "out_channels", 1, kAttrMax, kG, ctx, &node->out_channels));
      FLAWLENS_RETURN_IF_ERROR(
          GetIntPair(j, "kernel", 1, kAttrMax, kG, ctx, &node->kernel_h, &node->kernel_w));
      FLAWLENS_RETURN_IF_ERROR(
          GetIntPair(j, "stride", 1, kAttrMax, kG, ctx, &node->stride_h, &node->stride_w));
      FLAWLENS_RETURN_IF_ERROR(GetIntPair(j, "dilation", 1, kAttrMax, kG, ctx,
                                          &node->dilation_h, &node->dilation_w));
      FLAWLENS_RETURN_IF_ERROR(GetInt(j, "groups", 1, kAttrMax, kG, ctx, &node->groups));
      if (node->out_channels > kMaxChannels || node->kernel_h > kMaxKernel ||
          node->kernel_w > kMaxKernel) {
        return MakeError(ErrorCode::kLimitExceeded,
                         "%s: weight shape %s exceeds the channel (%d) or kernel (%d) limit",
                         ctx.c_str(), ShapeString(ws).c_str(), kMaxChannels, kMaxKernel);
      }
      if (ws[0] != node->out_channels || ws[1] != node->kernel_h || ws[2] != node->kernel_w) {
        return MakeError(ErrorCode::kBadShape,
                         "%s: weight has shape %s, expected [%d, %d, %d, in_c/groups]",
                         ctx.c_str(), ShapeString(ws).c_str(), node->out_channels,
                         node->kernel_h, node->kernel_w);
      }
      break;
    }
    case OpAttrs::kDense: {
      if (ws.size() != 2) {
        return MakeError(ErrorCode::kBadShape, "%s: weight has shape %s, expected [out, in]",
                         ctx.c_str(), ShapeString(ws).c_str());
      }
      node->out_channels = static_cast<int>(std::min<int64_t>(ws[0], kMaxChannels + 1));
      FLAWLENS_RETURN_IF_ERROR(
          GetInt(j, "out_channels", 1, kAttrMax, kG, ctx, &node->out_channels));
      if (node->out_channels > kMaxChannels) {
        return MakeError(ErrorCode::kLimitExceeded, "%s: weight shape %s exceeds the limit of %d outputs",
                         ctx.c_str(), ShapeString(ws).c_str(), kMaxChannels);
      }
      if (ws[0] != node->out_channels) {
        return MakeError(ErrorCode::kBadShape, "%s: weight has shape %s, expected [%d, in]",
                         ctx.c_str(), ShapeString(ws).c_str(), node->out_channels);
      }
      break;
    }
    case OpAttrs::kMaxPool:
    case OpAttrs::kAvgPool: {
      if (FindMember(j, "kernel") == nullptr) {
        return MakeError(kG, "%s: needs \"kernel\"", ctx.c_str());
      }
      FLAWLENS_RETURN_IF_ERROR(
          GetIntPair(j, "kernel", 1, kAttrMax, kG, ctx, &node->kernel_h, &node->kernel_w));
      // PyTorch semantics: stride defaults to the kernel size.
      node->stride_h = node->kernel_h;
      node->stride_w = node->kernel_w;
      FLAWLENS_RETURN_IF_ERROR(
          GetIntPair(j, "stride", 1, kAttrMax, kG, ctx, &node->stride_h, &node->stride_w));
      FLAWLENS_RETURN_IF_ERROR(GetIntPair(j, "dilation", 1, kAttrMax, kG, ctx,
                                          &node->dilation_h, &node->dilation_w));
      FLAWLENS_RETURN_IF_ERROR(
          GetBool(j, "count_include_pad", kG, ctx, &node->count_include_pad));
      break;
    }
    case OpAttrs::kUpsample: {
      std::string mode = "bilinear";
      FLAWLENS_RETURN_IF_ERROR(GetString(j, "mode", kG, ctx, &mode));
      if (mode == "nearest") {
        node->upsample_mode = UpsampleMode::kNearest;
      } else if (mode == "bilinear") {
        node->upsample_mode = UpsampleMode::kBilinear;
      } else {
        return MakeError(kG, "%s: unknown upsample mode '%s' (expected nearest or bilinear)",
                         ctx.c_str(), Q(mode).c_str());
      }
      FLAWLENS_RETURN_IF_ERROR(
          GetIntPair(j, "scale", 1, kAttrMax, kG, ctx, &node->scale_h, &node->scale_w));
      break;
    }
    case OpAttrs::kReduce: {
      std::string mode = "sum_squares";
      FLAWLENS_RETURN_IF_ERROR(GetString(j, "mode", kG, ctx, &mode));
      if (mode == "sum_squares") node->reduce_mode = ReduceMode::kSumSquares;
      else if (mode == "min") node->reduce_mode = ReduceMode::kMin;
      else if (mode == "max") node->reduce_mode = ReduceMode::kMax;
      else if (mode == "mean") node->reduce_mode = ReduceMode::kMean;
      else {
        return MakeError(kG, "%s: unknown reduce mode '%s' (expected sum_squares, min, max, mean)",
                         ctx.c_str(), Q(mode).c_str());
      }
      break;
    }
    case OpAttrs::kWhitening:
      // Tensor shapes against the input: Graph::Finalize (kBadShape).
      if (ws.size() != 4) {
        return MakeError(ErrorCode::kBadShape, "%s: weight has shape %s, expected [gh, gw, c, c]",
                         ctx.c_str(), ShapeString(ws).c_str());
      }
      if (node->bias.shape.size() != 3) {
        return MakeError(ErrorCode::kBadShape, "%s: bias has shape %s, expected [h, w, c]",
                         ctx.c_str(), ShapeString(node->bias.shape).c_str());
      }
      break;
    case OpAttrs::kNone:
      break;
  }
  return Status::Ok();
}

// "pad" of conv2d and the pools: p, [ph, pw] or [top, left, bottom, right].
Status ParsePad(const JsonValue& j, const std::string& ctx, Node* node) {
  constexpr ErrorCode kG = ErrorCode::kBadGraph;
  if (InfoOf(node->op).shape == ShapeRule::kWindow) {
    if (const JsonValue* pad = FindMember(j, "pad")) {
      int64_t p[4] = {0, 0, 0, 0};
      bool ok = false;
      if (pad->is_number()) {
        ok = JsonToInt64(*pad, 0, kAttrMax, &p[0]);
        p[1] = p[2] = p[3] = p[0];
      } else if (pad->is_array() && pad->size() == 2) {
        ok = JsonToInt64((*pad)[0], 0, kAttrMax, &p[0]) && JsonToInt64((*pad)[1], 0, kAttrMax, &p[1]);
        p[2] = p[0];
        p[3] = p[1];
      } else if (pad->is_array() && pad->size() == 4) {
        ok = true;
        for (int i = 0; i < 4; ++i) ok = ok && JsonToInt64((*pad)[i], 0, kAttrMax, &p[i]);
      }
      if (!ok) {
        return MakeError(kG,
                         "%s: 'pad' must be p, [ph, pw] or [top, left, bottom, right] with "
                         "integers >= 0 (got %s)",
                         ctx.c_str(), DumpJson(*pad).substr(0, 64).c_str());
      }
      node->pad_top = static_cast<int>(p[0]);
      node->pad_left = static_cast<int>(p[1]);
      node->pad_bottom = static_cast<int>(p[2]);
      node->pad_right = static_cast<int>(p[3]);
    }
  }
  return Status::Ok();
}

Status ParseNode(const JsonValue& j, size_t index, const std::map<std::string, int>& values,
                 const TensorMap& tensors, Node* node) {
  constexpr ErrorCode kG = ErrorCode::kBadGraph;
  if (!j.is_object()) return MakeError(kG, "node %zu: must be a JSON object", index);
  const JsonValue* name = FindMember(j, "name");
  if (name == nullptr || !name->is_string() || name->str().empty()) {
    return MakeError(kG, "node %zu: needs a non-empty string \"name\"", index);
  }
  node->name = name->str();
  const std::string ctx = "node '" + Q(node->name) + "'";
  if (node->name == "input" || values.count(node->name)) {
    return MakeError(kG, "%s: duplicate name (names must be unique and not \"input\")", ctx.c_str());
  }
  const JsonValue* op = FindMember(j, "op");
  if (op == nullptr || !op->is_string()) {
    return MakeError(kG, "%s: needs a string \"op\"", ctx.c_str());
  }
  if (!ParseOpType(op->str(), &node->op)) {
    return MakeError(kG, "%s: unknown op '%s'", ctx.c_str(), Q(op->str()).c_str());
  }
  const std::string op_name = op->str();

  const JsonValue* inputs = FindMember(j, "inputs");
  if (inputs == nullptr || !inputs->is_array() || inputs->empty()) {
    return MakeError(kG, "%s: needs \"inputs\", a non-empty array of names", ctx.c_str());
  }
  if (inputs->size() > static_cast<size_t>(kMaxNodes)) {
    return MakeError(ErrorCode::kLimitExceeded, "%s: %zu inputs", ctx.c_str(), inputs->size());
  }
  for (const JsonValue& in : inputs->items()) {
    if (!in.is_string()) return MakeError(kG, "%s: inputs must be strings", ctx.c_str());
    const std::string& in_name = in.str();
    auto it = values.find(in_name);
    if (it == values.end()) {
      return MakeError(kG, "node '%s' reads '%s' which is not defined before it",
                       Q(node->name).c_str(), Q(in_name).c_str());
    }
    node->inputs.push_back(it->second);
  }
  const size_t n_in = node->inputs.size();
  const OpInfo& info = InfoOf(node->op);
  const bool arity_ok = info.arity == OpArity::kTwoOrMore ? n_in >= 2
                        : info.arity == OpArity::kTwo     ? n_in == 2
                                                          : n_in == 1;
  if (!arity_ok) {
    return MakeError(kG, "%s: op %s takes %s, got %zu", ctx.c_str(), op_name.c_str(),
                     info.arity == OpArity::kTwoOrMore ? "2 or more inputs"
                     : info.arity == OpArity::kTwo     ? "2 inputs"
                                                       : "1 input",
                     n_in);
  }

  const bool has_weights = info.tensors != OpTensors::kNone;
  if (!has_weights && (FindMember(j, "weight") || FindMember(j, "bias"))) {
    return MakeError(kG, "%s: op %s takes no weight/bias", ctx.c_str(), op_name.c_str());
  }
  bool has_weight = false, has_bias = false;
  if (has_weights) {
    FLAWLENS_RETURN_IF_ERROR(ResolveTensor(j, "weight", ctx, tensors, &node->weight, &has_weight));
    if (!has_weight) return MakeError(kG, "%s: needs \"weight\"", ctx.c_str());
    FLAWLENS_RETURN_IF_ERROR(ResolveTensor(j, "bias", ctx, tensors, &node->bias, &has_bias));
    if (info.tensors == OpTensors::kWeightAndBias && !has_bias)
      return MakeError(kG, "%s: needs \"bias\" (the per-position means [h, w, c])", ctx.c_str());
  }
  FLAWLENS_RETURN_IF_ERROR(ParseOpAttributes(j, ctx, node));
  FLAWLENS_RETURN_IF_ERROR(ParsePad(j, ctx, node));
  if (info.activation != OpActivation::kNone) {
    FLAWLENS_RETURN_IF_ERROR(
        ParseActivationAttr(j, ctx, info.activation == OpActivation::kRequired, node));
  }
  if (has_bias && info.tensors == OpTensors::kWeight) {
    if (node->bias.shape.size() != 1 || node->bias.shape[0] != node->out_channels) {
      return MakeError(ErrorCode::kBadShape, "%s: bias has shape %s, expected [%d]", ctx.c_str(),
                       ShapeString(node->bias.shape).c_str(), node->out_channels);
    }
  }
  return Status::Ok();
}

Status ParseGraph(const JsonValue& j, const TensorMap& tensors, Graph* graph) {
  constexpr ErrorCode kG = ErrorCode::kBadGraph;
  if (!j.is_object()) return MakeError(kG, "graph: must be a JSON object");
  const JsonValue* input = FindMember(j, "input");
  if (input == nullptr || !input->is_object()) {
    return MakeError(kG, "graph: needs \"input\": {\"h\", \"w\", \"c\"}");
  }
  // Range limits (kMaxModelInputSide, kMaxChannels) are Finalize()'s.
  for (const char* k : {"h", "w", "c"}) {
    if (FindMember(*input, k) == nullptr) {
      return MakeError(kG, "graph: input needs \"%s\"", k);
    }
  }
  FLAWLENS_RETURN_IF_ERROR(GetInt(*input, "h", 1, int64_t{1} << 30, kG,
                                  "graph input", &graph->input.h));
  FLAWLENS_RETURN_IF_ERROR(GetInt(*input, "w", 1, int64_t{1} << 30, kG,
                                  "graph input", &graph->input.w));
  FLAWLENS_RETURN_IF_ERROR(GetInt(*input, "c", 1, int64_t{1} << 30, kG,
                                  "graph input", &graph->input.c));
  const JsonValue* nodes = FindMember(j, "nodes");
  if (nodes == nullptr || !nodes->is_array() || nodes->empty()) {
    return MakeError(kG, "graph: needs \"nodes\", a non-empty array");
  }
  if (nodes->size() > static_cast<size_t>(kMaxNodes)) {
    return MakeError(ErrorCode::kLimitExceeded, "graph: %zu nodes (limit %d)", nodes->size(),
                     kMaxNodes);
  }
  std::map<std::string, int> values = {{"input", 0}};
  graph->nodes.clear();
  graph->nodes.reserve(nodes->size());
  for (size_t i = 0; i < nodes->size(); ++i) {
    Node node;
    FLAWLENS_RETURN_IF_ERROR(ParseNode((*nodes)[i], i, values, tensors, &node));
    values[node.name] = static_cast<int>(i) + 1;
    graph->nodes.push_back(std::move(node));
  }
  graph->output = static_cast<int>(graph->nodes.size());
  if (const JsonValue* out = FindMember(j, "output")) {
    if (!out->is_string()) return MakeError(kG, "graph: \"output\" must be a node name");
    auto it = values.find(out->str());
    if (it == values.end() || it->second == 0) {
      return MakeError(kG, "graph: output '%s' is not a node", Q(out->str()).c_str());
    }
    graph->output = it->second;
  }
  graph->output_names.clear();
  if (const JsonValue* names = FindMember(j, "output_names")) {
    if (!names->is_array()) return MakeError(kG, "graph: \"output_names\" must be an array");
    for (const JsonValue& n : names->items()) {
      if (!n.is_string() || values.find(n.str()) == values.end()) {
        return MakeError(kG, "graph: output_names entry %s is not a node",
                         DumpJson(n).substr(0, 64).c_str());
      }
      graph->output_names.push_back(n.str());
    }
  }
  return graph->Finalize();
}

// ---- metadata --------------------------------------------------------------

Status MetaJson(const std::map<std::string, std::string>& meta, const char* key, bool required,
                JsonValue* out) {
  auto it = meta.find(key);
  if (it == meta.end()) {
    if (required) {
      return MakeError(ErrorCode::kBadHeader, "__metadata__ has no \"%s\"", key);
    }
    *out = JsonValue::Object();
    return Status::Ok();
  }
  return ParseJson(it->second.data(), it->second.size(), std::string("__metadata__.") + key, out);
}

// The postprocess calibration tensors named in the header (cell_* of the
// output map's shape, edge_* [S, S]; the *_std ones > 0).
Status ResolvePostprocessTensors(const std::string* cell_names, const TensorMap& by_name,
                                 const Shape& out, PostprocessConfig* post) {
  PostprocessConfig& pp = *post;
  TensorRef* cell_refs[4] = {&pp.cell_mean, &pp.cell_std, &pp.edge_mean, &pp.edge_std};
  const char* cell_keys[4] = {"cell_mean", "cell_std", "edge_mean", "edge_std"};
  for (int k = 0; k < 4; ++k) {
    if (cell_names[k].empty()) continue;
    auto it = by_name.find(cell_names[k]);
    if (it == by_name.end()) {
      return MakeError(ErrorCode::kBadHeader, "postprocess: %s tensor '%s' is not in the file",
                       cell_keys[k], Q(cell_names[k]).c_str());
    }
    const RawTensor& t = *it->second;
    if (k >= 2) {  // edge tables: [S, S], S even, 2 <= S <= 128, the same S for both
      const int64_t s = t.shape.size() == 2 ? t.shape[0] : 0;
      if (out.c != 1 || t.shape.size() != 2 || t.shape[1] != s || s < 2 || s > 128 || s % 2) {
        return MakeError(ErrorCode::kBadShape,
                         "postprocess: %s '%s' has shape %s; expected [S, S] with S even, "
                         "2 <= S <= 128, and a 1-channel network output",
                         cell_keys[k], Q(t.name).c_str(), ShapeString(t.shape).c_str());
      }
    } else if (out.c != 1 || t.shape.size() != 2 || t.shape[0] != out.h || t.shape[1] != out.w) {
      return MakeError(ErrorCode::kBadShape,
                       "postprocess: %s '%s' has shape %s; the network output is %dx%dx%d, "
                       "expected [%d, %d] and 1 channel",
                       cell_keys[k], Q(t.name).c_str(), ShapeString(t.shape).c_str(), out.h,
                       out.w, out.c, out.h, out.w);
    }
    if (k == 1 || k == 3) {
      for (int64_t i = 0; i < t.elements; ++i) {
        if (!(t.data[i] > 0.0f)) {
          return MakeError(ErrorCode::kBadHeader,
                           "postprocess: %s '%s' element %lld is %g; must be > 0", cell_keys[k],
                           Q(t.name).c_str(), static_cast<long long>(i), t.data[i]);
        }
      }
    }
    cell_refs[k]->data = t.data;
    cell_refs[k]->shape = t.shape;
  }
  if (pp.edge_mean.data && pp.edge_std.data && pp.edge_mean.shape[0] != pp.edge_std.shape[0]) {
    return MakeError(ErrorCode::kBadShape, "postprocess: edge_mean is %lldx%lld but edge_std %lldx%lld",
                     static_cast<long long>(pp.edge_mean.shape[0]),
                     static_cast<long long>(pp.edge_mean.shape[0]),
                     static_cast<long long>(pp.edge_std.shape[0]),
                     static_cast<long long>(pp.edge_std.shape[0]));
  }
  return Status::Ok();
}

// The safetensors framing, the header JSON and the flawlens metadata strings
// (format and version checked): model/safetensors.h.
Status ReadHeader(const uint8_t* bytes, size_t size, JsonValue* header_out,
                  uint64_t* header_len_out, std::map<std::string, std::string>* meta_out) {
  FLAWLENS_ASSIGN_OR_RETURN(SafetensorsHeader header, ReadSafetensorsHeader(bytes, size));
  FLAWLENS_RETURN_IF_ERROR(CheckFlawlensMetadata(header));
  *header_len_out = header.length;
  *header_out = std::move(header.json);
  *meta_out = std::move(header.metadata);
  return Status::Ok();
}

Status LoadInto(const uint8_t* bytes, size_t size, Model* model) {
  JsonValue header;
  uint64_t header_len = 0;
  std::map<std::string, std::string> meta;
  FLAWLENS_RETURN_IF_ERROR(ReadHeader(bytes, size, &header, &header_len, &meta));

  // Tensors.
  const size_t n_tensors = header.size() - 1;
  if (n_tensors > static_cast<size_t>(kMaxTensors)) {
    return MakeError(ErrorCode::kLimitExceeded, "%zu tensors (limit %d)", n_tensors, kMaxTensors);
  }
  std::vector<RawTensor> tensors;
  tensors.reserve(n_tensors);
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string& key = header.keys()[i];
    if (key == "__metadata__") continue;
    RawTensor t;
    FLAWLENS_RETURN_IF_ERROR(ParseTensorEntry(key, header[i], &t));
    tensors.push_back(std::move(t));
  }
  const uint64_t data_size = static_cast<uint64_t>(size) - 8 - header_len;
  FLAWLENS_RETURN_IF_ERROR(CheckLayout(tensors, data_size));
  const uint8_t* data_region = bytes + 8 + header_len;
  model->storage.reserve(tensors.size());
  TensorMap by_name;
  for (RawTensor& t : tensors) {
    FLAWLENS_RETURN_IF_ERROR(CopyTensor(data_region, &t, model));
    by_name[t.name] = &t;
  }

  // Graph.
  JsonValue graph_json, pre_json, post_json, calib_json, card_json;
  FLAWLENS_RETURN_IF_ERROR(MetaJson(meta, "graph", true, &graph_json));
  FLAWLENS_RETURN_IF_ERROR(ParseGraph(graph_json, by_name, &model->graph));
  const Shape& in = model->graph.input;

  // Preprocessing.
  FLAWLENS_RETURN_IF_ERROR(MetaJson(meta, "preprocess", true, &pre_json));
  FLAWLENS_RETURN_IF_ERROR(ParsePreprocessJson(pre_json, &model->preprocess));
  PreprocessConfig& pre = model->preprocess;
  if (pre.resize_w == 0 && pre.resize_h == 0 && pre.crop.w == 0 && pre.crop.h == 0) {
    pre.resize_w = in.w;  // default: resize straight to the network input
    pre.resize_h = in.h;
  }
  if (pre.keep_aspect && meta["format_version"] != "2") {
    return MakeError(ErrorCode::kBadHeader,
                     "preprocess: geometry keep_aspect needs format_version 2 (a version-1 "
                     "reader would stretch the image); this file says '%s'",
                     Q(meta["format_version"]).c_str());
  }
  if (Status st = pre.Validate(); !st.ok()) {
    return Status(ErrorCode::kBadHeader, st.message());  // a bad file, not a bad call
  }
  if (pre.out_w() != in.w || pre.out_h() != in.h || pre.channels != in.c) {
    return MakeError(ErrorCode::kBadShape,
                     "preprocess produces %dx%dx%d (h x w x c) but the network input is %dx%dx%d",
                     pre.out_h(), pre.out_w(), pre.channels, in.h, in.w, in.c);
  }

  // Postprocessing.
  FLAWLENS_RETURN_IF_ERROR(MetaJson(meta, "postprocess", false, &post_json));
  std::string cell_names[4];
  FLAWLENS_RETURN_IF_ERROR(ParsePostprocessJson(post_json, &model->postprocess, cell_names));
  const Shape& out = model->graph.output_shape();
  const float sigma = model->postprocess.blur_sigma;
  if (sigma > 0.0f && int64_t{out.h} * out.w > 1) {
    // The map blur reflects once at the borders: its radius must fit the map.
    const int radius = std::max(1, static_cast<int>(std::ceil(3.0f * sigma)));
    if (radius >= std::min(out.h, out.w)) {
      return MakeError(ErrorCode::kBadHeader,
                       "postprocess: blur_sigma %g (radius %d) is too large for the %dx%d map",
                       sigma, radius, out.h, out.w);
    }
  }
  FLAWLENS_RETURN_IF_ERROR(
      ResolvePostprocessTensors(cell_names, by_name, out, &model->postprocess));

  // Calibration and card.
  FLAWLENS_RETURN_IF_ERROR(MetaJson(meta, "calibration", false, &calib_json));
  FLAWLENS_RETURN_IF_ERROR(ParseCalibrationJson(calib_json, &model->calibration));
  FLAWLENS_RETURN_IF_ERROR(MetaJson(meta, "card", false, &card_json));
  if (!card_json.is_object()) {
    return MakeError(ErrorCode::kBadHeader, "card: must be a JSON object");
  }
  model->name = "unnamed";
  if (const JsonValue* name = FindMember(card_json, "name")) {
    if (name->is_string() && !name->str().empty()) {
      model->name = name->str();
    }
  }
  model->card_json = DumpJson(card_json);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Model>> LoadModel(const uint8_t* bytes, size_t size) {
  auto model = std::make_unique<Model>();
  Status st = LoadInto(bytes, size, model.get());
  if (!st.ok()) return st;
  return Result<std::unique_ptr<Model>>(std::move(model));
}

}  // namespace flawlens
