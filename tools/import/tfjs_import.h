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
#include "import/emit.h"
#include "model/model.h"

namespace flawlens::tfjs {

// Limits on the TF.js input, checked before anything is allocated for it.
inline constexpr size_t kMaxModelJsonBytes = 64u << 20;    // model.json text
inline constexpr int kMaxTfNodes = 100000;                 // nodes in the GraphDef
inline constexpr int kMaxShards = 4096;                    // shard files, all groups
inline constexpr uint64_t kMaxWeightBytes = 512ull << 20;  // all shards together

// The options every importer takes (import/emit.h): outputs are TF node
// names; SAME padding is computed for the input size.
struct ImportOptions : import::BackboneOptions {
  ImportOptions() { input_w = input_h = 256; }
};

using FeatureLayer = import::FeatureLayer;

struct ImportResult : import::Backbone {
  int tf_nodes_used = 0;  // TF nodes on the path (without consts)
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

}  // namespace flawlens::tfjs
