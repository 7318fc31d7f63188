// What the model importers (import-tfjs: tools/import/tfjs_*, import-onnx:
// tools/onnx/onnx_*) have in common: the options and result of an import, the
// engine graph they build node by node (folding constant scales / shifts and
// activations into the producing convolution), and the last step that turns
// it into a backbone model file through model/graph_builder.h: the requested
// outputs upsampled to the finest and concatenated, the preprocessing, the
// card, the written bytes checked to load.
//
// Free of CLI11 and LibTorch so that the fuzz targets can compile it.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"
#include "nn/graph.h"

namespace flawlens::import {

// Options of every import (the command line's --outputs, --input, --name, ...).
struct BackboneOptions {
  std::vector<std::string> outputs;  // the feature layers' names in the model (1+)
  int input_w = 0, input_h = 0;      // network input; 0: the importer's default
  std::string name;                  // card name
  std::string licence;               // card licence text
  std::string origin;                // card origin, e.g. "pkg@1.2.3 models/x.json"
  // Preprocessing written to the model file: x = (pixel * scale - mean) / std
  // per channel (pixels 0..255).
  float scale = 1.0f;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
};

// One requested layer in the backbone's output (channels [offset, offset+c)).
struct FeatureLayer {
  std::string node;  // as requested: a TF node or an ONNX tensor name
  int h = 0, w = 0, channels = 0;
  int stride_h = 1, stride_w = 1;  // product of the strides on its path
  int offset = 0;                  // first channel in the concatenated output
};

// What an import wrote.
struct Backbone {
  ModelSpec spec;              // what was written
  std::vector<uint8_t> bytes;  // WriteModel(spec), checked to load with LoadModel
  std::vector<FeatureLayer> features;
  int in_w = 0, in_h = 0, in_c = 3;     // network input
  int out_h = 0, out_w = 0, out_c = 0;  // the graph output
  int engine_nodes = 0;                 // nodes in the written graph
};

// `command` ("import-onnx") starts every message, as in every importer error.
Status CommandError(const char* command, ErrorCode code, const std::string& message);

// At least one output, none listed twice; `what` says what they name
// ("node", "tensor").
Status CheckOutputList(const char* command, const std::vector<std::string>& outputs,
                       const char* what);

// Parses "WxH" (e.g. "256x256") into w, h in [1, kMaxModelInputSide].
Status ParseInputSize(const char* command, const std::string& text, int* w, int* h);
// Parses "a" (all channels) or "a,b,c" into three floats.
Status ParseChannelTriple(const char* command, const std::string& text, const char* what,
                          float out[3]);

// IEEE half -> float (subnormals, infinities and NaN included).
float HalfToFloat(uint16_t h);
// Printable, bounded form of a name taken from a model file (for messages).
std::string Printable(const std::string& s);
// A file's bytes; `what` names it in messages ("model.json", "weight shard").
Result<std::vector<uint8_t>> ReadFileBytes(const char* command, const std::string& path,
                                           uint64_t limit, const std::string& what);
// "dir/resnet18.onnx" -> "resnet18" (the default card name).
std::string FileStem(const std::string& path);

// ---- the engine graph being built -------------------------------------------
struct ValueInfo {
  int h = 0, w = 0, c = 0;
  int rank = 4;  // 4: a map; 2: [1, C] (ONNX after Flatten; a 1x1xC engine value)
  int stride_h = 1, stride_w = 1;
};

enum class EngineOp { kConv2d, kActivation, kMaxPool2d, kAvgPool2d, kGlobalAvgPool, kUpsample,
                      kConcat, kAdd, kMul };

struct EngineNode {
  std::string name;
  EngineOp op = EngineOp::kConv2d;
  std::vector<int> inputs;  // value ids: 0 = input, i + 1 = node i
  // conv2d / pooling window
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int pt = 0, pl = 0, pb = 0, pr = 0, groups = 1, out_c = 0;
  bool count_include_pad = true;  // avgpool2d
  std::vector<float> weight;      // conv2d: OHWI
  std::vector<float> bias;        // conv2d: out_c (empty: none)
  Activation activation = Activation::kNone;  // conv2d, activation, add, mul
  float alpha = 0.0f;
  UpsampleMode mode = UpsampleMode::kBilinear;
  int scale_h = 1, scale_w = 1;  // upsample
  std::string owner;             // the model's value this node currently produces
};

// The nodes, per value the shape, and which model value each engine value is.
// Foldable / ApplyActivation / Affine fold into the producing node when only
// one consumer reads its value and it is not a requested output.
class EngineGraph {
 public:
  explicit EngineGraph(const char* command) : infos(1), command_(command) {}

  // Appends a node (its name made printable, bounded and unique); its value id.
  int AddNode(EngineNode node, const ValueInfo& info);
  int ValueOf(const std::string& name) const;
  // Whether the value's producer (a convolution; with !conv_only also add /
  // mul) can absorb an activation or affine step applied to model value x.
  bool Foldable(int value, const std::string& x, bool conv_only) const;
  // act(v): folded into v's producer or a new activation node named `name`;
  // `owner` is the model value it computes. Returns the value id.
  int ApplyActivation(int v, const std::string& x, const std::string& name,
                      const std::string& owner, Activation act, float alpha, bool conv_only);
  // v * scale[c] + shift[c] (one value or one per channel; empty: none):
  // folded into the producing convolution, else a 1x1 depthwise convolution;
  // sets values[owner].
  void Affine(int v, const std::string& x, const std::string& name, const std::string& owner,
              std::vector<float> scale, std::vector<float> shift);

  // What the card says that differs between importers.
  struct Card {
    std::string name, description;
    nlohmann::ordered_json origin;  // the source and what the model file says of itself
  };
  // The outputs (value ids, in options.outputs' order) upsampled to the finest
  // and concatenated; the graph, preprocessing and card written to out->spec.
  Status Finish(const BackboneOptions& options, const std::vector<int>& outs, const Card& card,
                Backbone* out);

  std::vector<EngineNode> nodes;
  std::vector<ValueInfo> infos;            // per value id; infos[0]: the input
  std::map<std::string, int> values;       // model value -> engine value id
  std::map<std::string, int> consumers;    // effective consumers per model value
  std::set<std::string> outputs;           // the requested outputs, resolved

 private:
  std::string GraphJson(int output, std::vector<ModelTensor>* tensors) const;
  std::string CardJson(const BackboneOptions& options, const Card& card,
                       const Backbone& result) const;

  const char* command_;
  std::set<std::string> used_names_;
};

// Writes out->spec into out->bytes and checks that the engine loads it and
// computes the output shape the importer computed.
Status WriteChecked(const char* command, Backbone* out);

}  // namespace flawlens::import
