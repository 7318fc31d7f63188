// Typed construction of a model file's graph (model/FORMAT.md) and of the
// whole file: every C++ producer of model files (the fit, the importers, the
// trainer, test fixtures) builds its graph through this one writer of graph
// JSON instead of assembling JSON by hand.
//
//   GraphBuilder g(256, 256, 3);                  // value "input"
//   ConvParams p;
//   p.out_channels = 16; p.kernel_h = p.kernel_w = 3; p.activation = Activation::kRelu;
//   std::string x = g.Conv2d("stem", GraphBuilder::kInput, p, weights, bias);
//   x = g.GlobalAvgPool("pool", x);
//   ModelSpec spec = g.Spec(x, PreprocessToJson(pre));   // then WriteModel(spec)
//
// Node calls return the new value's name (the node's name). Tensors are named
// "<node>.weight" and "<node>.bias". The builder checks nothing the loader
// checks (Graph::Finalize does, when the file is loaded): tests build broken
// graphs on purpose, and producers load what they wrote.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/json_value.h"
#include "model/model.h"
#include "nn/graph.h"

namespace flawlens {

// conv2d attributes (model/FORMAT.md); all of them are written.
struct ConvParams {
  int out_channels = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int groups = 1;
  Activation activation = Activation::kNone;
  std::optional<float> alpha;  // written when set; the loader's default otherwise
};

// maxpool2d / avgpool2d attributes; all of them are written.
struct PoolParams {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;  // maxpool2d only
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  bool count_include_pad = true;       // avgpool2d only
};

// A tensor handed to the builder: shape and data (row-major).
struct TensorData {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

const char* UpsampleModeName(UpsampleMode mode);  // "nearest", "bilinear"
const char* ReduceModeName(ReduceMode mode);      // "sum_squares", "min", ...

class GraphBuilder {
 public:
  static constexpr const char* kInput = "input";

  GraphBuilder(int h, int w, int c);

  // weight OHWI [out_channels][kernel_h][kernel_w][in_c / groups]; bias
  // [out_channels] or empty (none).
  std::string Conv2d(const std::string& name, const std::string& input, const ConvParams& p,
                     TensorData weight, std::vector<float> bias = {});
  // weight [out][in]; bias [out] or empty.
  std::string Dense(const std::string& name, const std::string& input, int out_channels,
                    Activation activation, TensorData weight, std::vector<float> bias = {},
                    std::optional<float> alpha = std::nullopt);
  std::string Activate(const std::string& name, const std::string& input, Activation activation,
                       std::optional<float> alpha = std::nullopt);
  std::string MaxPool2d(const std::string& name, const std::string& input, const PoolParams& p);
  std::string AvgPool2d(const std::string& name, const std::string& input, const PoolParams& p);
  std::string GlobalAvgPool(const std::string& name, const std::string& input);
  std::string Upsample(const std::string& name, const std::string& input, UpsampleMode mode,
                       int scale_h, int scale_w);
  std::string Concat(const std::string& name, const std::vector<std::string>& inputs);
  // activation: fused into the elementwise op ("none": not written).
  std::string Add(const std::string& name, const std::string& a, const std::string& b,
                  Activation activation = Activation::kNone,
                  std::optional<float> alpha = std::nullopt);
  std::string Mul(const std::string& name, const std::string& a, const std::string& b,
                  Activation activation = Activation::kNone,
                  std::optional<float> alpha = std::nullopt);
  std::string ReduceChannels(const std::string& name, const std::string& input, ReduceMode mode);
  // weight [gh][gw][c][c] (whitening per region), bias [h][w][c] (means).
  std::string PositionMahalanobis(const std::string& name, const std::string& input,
                                  TensorData weight, TensorData bias);

  // A node as given, for graphs no typed call can express (tests of the
  // loader's errors write unknown ops, wrong types, missing keys).
  void RawNode(JsonValue node);
  // A tensor that no node names (postprocess maps) or that a raw node names.
  void AddTensor(const std::string& name, TensorData tensor);

  // The graph JSON with `output` as the network output; `output_names`
  // (optional, FORMAT.md) when not empty.
  std::string GraphJson(const std::string& output,
                        const std::vector<std::string>& output_names = {}) const;
  const std::vector<ModelTensor>& tensors() const { return tensors_; }

  // The whole file's spec: this graph and tensors plus the other sections.
  ModelSpec Spec(const std::string& output, const std::string& preprocess_json,
                 const std::string& postprocess_json = "{}",
                 const std::string& calibration_json = "{}",
                 const std::string& card_json = "{}") const;

 private:
  JsonValue Node(const std::string& name, const char* op, const std::vector<std::string>& inputs);
  void SetActivation(JsonValue* node, Activation activation, std::optional<float> alpha,
                     bool always);
  JsonValue PoolNode(const std::string& name, const char* op, const std::string& input,
                     const PoolParams& p);
  std::string Push(JsonValue node, const std::string& name);
  // The node's "weight" (and "bias" when not empty) tensors, named after it.
  void AddWeights(JsonValue* node, const std::string& name, TensorData weight,
                  std::vector<float> bias);

  JsonValue input_;
  JsonValue nodes_ = JsonValue::Array();
  std::vector<ModelTensor> tensors_;
};

}  // namespace flawlens
