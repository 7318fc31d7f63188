// Import a TensorFlow.js graph model (model.json + weight shards) as a
// flawlens backbone: the subgraph that computes the requested feature layers,
// mapped onto engine ops (model/FORMAT.md) and written as one model file.
//
// The library half of `flawlens import-tfjs` (the CLI wiring is
// import_command.cc): free of CLI11 and LibTorch so that the fuzz target can
// compile it directly. Every bad input is a Status naming the node, weight or
// shard at fault; nothing here aborts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"

namespace flawlens::tfjs {

// Limits on the TF.js input, checked before anything is allocated for it.
inline constexpr size_t kMaxModelJsonBytes = 64u << 20;    // model.json text
inline constexpr int kMaxTfNodes = 100000;                 // nodes in the GraphDef
inline constexpr int kMaxShards = 4096;                    // shard files, all groups
inline constexpr uint64_t kMaxWeightBytes = 512ull << 20;  // all shards together

struct ImportOptions {
  std::vector<std::string> outputs;  // TF node names of the feature layers (1+)
  int input_w = 256, input_h = 256;  // network input; SAME padding computed for it
  std::string name;                  // card name (default: model.json's stem)
  std::string licence;               // card licence text
  std::string origin;                // card origin, e.g. "pkg@1.2.3 models/x.json"
  float scale = 1.0f;                // preprocess pixel multiplier (0..255 input)
  float mean = 0.0f, std = 1.0f;     // preprocess mean / std (all channels)
};

// One requested layer in the backbone's output (channels [offset, offset+c)).
struct FeatureLayer {
  std::string node;
  int h = 0, w = 0, channels = 0;
  int stride_h = 1, stride_w = 1;  // product of the strides on its path
  int offset = 0;                  // first channel in the concatenated output
};

struct ImportResult {
  ModelSpec spec;              // what was written
  std::vector<uint8_t> bytes;  // WriteModel(spec), checked to load with LoadModel
  std::vector<FeatureLayer> features;
  int in_c = 3;                         // network input channels (1 or 3)
  int out_h = 0, out_w = 0, out_c = 0;  // the graph output
  int tf_nodes_used = 0;                // TF nodes on the path (without consts)
  int engine_nodes = 0;                 // nodes in the written graph
};

// Reads one weight shard; `path` is as written in the manifest (relative to
// model.json). Returns the bytes or an error naming the shard.
using ShardReader = std::function<Result<std::vector<uint8_t>>(const std::string& path)>;

// Imports from model.json text and a shard reader.
Result<ImportResult> ImportTfjs(const std::string& model_json, const ShardReader& read_shard,
                                const ImportOptions& options);

// Imports from a model.json on disk (shards relative to its folder).
Result<ImportResult> ImportTfjsFile(const std::string& model_json_path,
                                    const ImportOptions& options);

// Parses "WxH" (e.g. "256x256") into w, h in [1, kMaxModelInputSide].
Status ParseInputSize(const std::string& text, int* w, int* h);

}  // namespace flawlens::tfjs
