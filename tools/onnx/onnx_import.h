// Import an ONNX model (a torchvision network exported with torch.onnx.export,
// an anomalib backbone, ...) as a flawlens backbone: the subgraph that computes
// the requested feature tensors, NCHW mapped onto the engine's NHWC ops
// (model/FORMAT.md) and written as one model file. The same contract as
// import-tfjs (tools/import/tfjs_import.h): several outputs are upsampled to
// the finest and concatenated along channels; the card says "kind": "backbone".
//
// The library half of `flawlens import-onnx` (import_command.cc is the CLI
// wiring): parsing is Debian's ONNX protobuf schema (onnx_proto), never a
// hand-written parser. Every bad input is a Status naming the node, tensor or
// attribute at fault; nothing here aborts. docs/ONNX.md lists the operators.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "import/emit.h"
#include "model/model.h"

namespace flawlens::onnx_import {

// Limits on the ONNX input, checked before anything is allocated for it.
inline constexpr uint64_t kMaxOnnxBytes = 1ull << 30;      // the .onnx file (protobuf: < 2 GiB)
inline constexpr int kMaxOnnxNodes = 100000;               // nodes in the graph
inline constexpr uint64_t kMaxWeightBytes = 512ull << 20;  // decoded constants on the path

// The options every importer takes (import/emit.h): outputs are ONNX tensor
// names; input 0: the graph input's static H and W (256x256 when dynamic);
// torchvision preprocessing: scale 1/255, ImageNet mean / std.
using ImportOptions = import::BackboneOptions;
using FeatureLayer = import::FeatureLayer;

struct ImportResult : import::Backbone {
  int onnx_nodes_used = 0;  // ONNX nodes on the path (without Constant)
  int64_t opset = 0;        // the model's default-domain opset
};

// Imports from the bytes of a .onnx file.
Result<ImportResult> ImportOnnx(const uint8_t* data, size_t size, const ImportOptions& options);

// Imports from a .onnx file on disk (weights inside it; external data is not
// supported).
Result<ImportResult> ImportOnnxFile(const std::string& path, const ImportOptions& options);

// Every tensor a node computes (in file order), for choosing --outputs.
struct TensorEntry {
  std::string tensor, op, node;
};
Result<std::vector<TensorEntry>> ListOnnxTensors(const uint8_t* data, size_t size);

}  // namespace flawlens::onnx_import
