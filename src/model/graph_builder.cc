#include "model/graph_builder.h"

#include <utility>

namespace flawlens {

namespace {

JsonValue Pair(int a, int b) { return JsonValue::Array().Push(a).Push(b); }

JsonValue Pad(int top, int left, int bottom, int right) {
  return JsonValue::Array().Push(top).Push(left).Push(bottom).Push(right);
}

bool UsesAlpha(Activation a) {
  return a == Activation::kLeakyRelu || a == Activation::kHardSwish ||
         a == Activation::kHardSigmoid;
}

}  // namespace

const char* UpsampleModeName(UpsampleMode mode) {
  return mode == UpsampleMode::kNearest ? "nearest" : "bilinear";
}

const char* ReduceModeName(ReduceMode mode) {
  switch (mode) {
    case ReduceMode::kSumSquares: return "sum_squares";
    case ReduceMode::kMin: return "min";
    case ReduceMode::kMax: return "max";
    case ReduceMode::kMean: return "mean";
  }
  return "unknown";
}

GraphBuilder::GraphBuilder(int h, int w, int c) {
  input_ = JsonValue::Object();
  input_.Set("h", h).Set("w", w).Set("c", c);
}

JsonValue GraphBuilder::Node(const std::string& name, const char* op,
                             const std::vector<std::string>& inputs) {
  JsonValue in = JsonValue::Array();
  for (const std::string& s : inputs) in.Push(s);
  JsonValue n = JsonValue::Object();
  n.Set("name", name).Set("op", op).Set("inputs", std::move(in));
  return n;
}

void GraphBuilder::SetActivation(JsonValue* node, Activation activation,
                                 std::optional<float> alpha, bool always) {
  if (always || activation != Activation::kNone) node->Set("activation", ActivationName(activation));
  // The float, widened exactly: the loader reads back the same float.
  if (alpha && UsesAlpha(activation)) node->Set("alpha", static_cast<double>(*alpha));
}

void GraphBuilder::AddWeights(JsonValue* node, const std::string& name, TensorData weight,
                              std::vector<float> bias) {
  node->Set("weight", name + ".weight");
  AddTensor(name + ".weight", std::move(weight));
  if (!bias.empty()) {
    node->Set("bias", name + ".bias");
    const int64_t count = static_cast<int64_t>(bias.size());
    AddTensor(name + ".bias", {{count}, std::move(bias)});
  }
}

std::string GraphBuilder::Push(JsonValue node, const std::string& name) {
  nodes_.Push(std::move(node));
  return name;
}

std::string GraphBuilder::Conv2d(const std::string& name, const std::string& input,
                                 const ConvParams& p, TensorData weight, std::vector<float> bias) {
  JsonValue n = Node(name, "conv2d", {input});
  n.Set("out_channels", p.out_channels);
  n.Set("kernel", Pair(p.kernel_h, p.kernel_w));
  n.Set("stride", Pair(p.stride_h, p.stride_w));
  n.Set("dilation", Pair(p.dilation_h, p.dilation_w));
  n.Set("pad", Pad(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right));
  n.Set("groups", p.groups);
  SetActivation(&n, p.activation, p.alpha, /*always=*/true);
  AddWeights(&n, name, std::move(weight), std::move(bias));
  return Push(std::move(n), name);
}

std::string GraphBuilder::Dense(const std::string& name, const std::string& input,
                                int out_channels, Activation activation, TensorData weight,
                                std::vector<float> bias, std::optional<float> alpha) {
  JsonValue n = Node(name, "dense", {input});
  n.Set("out_channels", out_channels);
  SetActivation(&n, activation, alpha, /*always=*/true);
  AddWeights(&n, name, std::move(weight), std::move(bias));
  return Push(std::move(n), name);
}

std::string GraphBuilder::Activate(const std::string& name, const std::string& input,
                                   Activation activation, std::optional<float> alpha) {
  JsonValue n = Node(name, "activation", {input});
  SetActivation(&n, activation, alpha, /*always=*/true);
  return Push(std::move(n), name);
}

JsonValue GraphBuilder::PoolNode(const std::string& name, const char* op,
                                 const std::string& input, const PoolParams& p) {
  JsonValue n = Node(name, op, {input});
  n.Set("kernel", Pair(p.kernel_h, p.kernel_w));
  n.Set("stride", Pair(p.stride_h, p.stride_w));
  n.Set("pad", Pad(p.pad_top, p.pad_left, p.pad_bottom, p.pad_right));
  return n;
}

std::string GraphBuilder::MaxPool2d(const std::string& name, const std::string& input,
                                    const PoolParams& p) {
  JsonValue n = PoolNode(name, "maxpool2d", input, p);
  n.Set("dilation", Pair(p.dilation_h, p.dilation_w));
  return Push(std::move(n), name);
}

std::string GraphBuilder::AvgPool2d(const std::string& name, const std::string& input,
                                    const PoolParams& p) {
  JsonValue n = PoolNode(name, "avgpool2d", input, p);
  n.Set("count_include_pad", p.count_include_pad);
  return Push(std::move(n), name);
}

std::string GraphBuilder::GlobalAvgPool(const std::string& name, const std::string& input) {
  return Push(Node(name, "global_avgpool", {input}), name);
}

std::string GraphBuilder::Upsample(const std::string& name, const std::string& input,
                                   UpsampleMode mode, int scale_h, int scale_w) {
  JsonValue n = Node(name, "upsample", {input});
  n.Set("mode", UpsampleModeName(mode)).Set("scale", Pair(scale_h, scale_w));
  return Push(std::move(n), name);
}

std::string GraphBuilder::Concat(const std::string& name, const std::vector<std::string>& inputs) {
  return Push(Node(name, "concat", inputs), name);
}

std::string GraphBuilder::Add(const std::string& name, const std::string& a, const std::string& b,
                              Activation activation, std::optional<float> alpha) {
  JsonValue n = Node(name, "add", {a, b});
  SetActivation(&n, activation, alpha, /*always=*/false);
  return Push(std::move(n), name);
}

std::string GraphBuilder::Mul(const std::string& name, const std::string& a, const std::string& b,
                              Activation activation, std::optional<float> alpha) {
  JsonValue n = Node(name, "mul", {a, b});
  SetActivation(&n, activation, alpha, /*always=*/false);
  return Push(std::move(n), name);
}

std::string GraphBuilder::ReduceChannels(const std::string& name, const std::string& input,
                                         ReduceMode mode) {
  JsonValue n = Node(name, "reduce_channels", {input});
  n.Set("mode", ReduceModeName(mode));
  return Push(std::move(n), name);
}

std::string GraphBuilder::PositionMahalanobis(const std::string& name, const std::string& input,
                                              TensorData weight, TensorData bias) {
  JsonValue n = Node(name, "position_mahalanobis", {input});
  n.Set("weight", name + ".weight").Set("bias", name + ".bias");
  AddTensor(name + ".weight", std::move(weight));
  AddTensor(name + ".bias", std::move(bias));
  return Push(std::move(n), name);
}

void GraphBuilder::RawNode(JsonValue node) { nodes_.Push(std::move(node)); }

void GraphBuilder::AddTensor(const std::string& name, TensorData tensor) {
  tensors_.push_back({name, std::move(tensor.shape), std::move(tensor.data)});
}

std::string GraphBuilder::GraphJson(const std::string& output,
                                    const std::vector<std::string>& output_names) const {
  JsonValue g = JsonValue::Object();
  g.Set("input", input_).Set("nodes", nodes_).Set("output", output);
  if (!output_names.empty()) {
    JsonValue names = JsonValue::Array();
    for (const std::string& s : output_names) names.Push(s);
    g.Set("output_names", std::move(names));
  }
  return g.Dump();
}

ModelSpec GraphBuilder::Spec(const std::string& output, const std::string& preprocess_json,
                             const std::string& postprocess_json,
                             const std::string& calibration_json,
                             const std::string& card_json) const {
  ModelSpec spec;
  spec.graph_json = GraphJson(output);
  spec.preprocess_json = preprocess_json;
  spec.postprocess_json = postprocess_json;
  spec.calibration_json = calibration_json;
  spec.card_json = card_json;
  spec.tensors = tensors_;
  return spec;
}

}  // namespace flawlens
