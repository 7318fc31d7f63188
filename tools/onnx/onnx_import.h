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
#include "model/model.h"

namespace flawlens::onnx_import {

// Limits on the ONNX input, checked before anything is allocated for it.
inline constexpr uint64_t kMaxOnnxBytes = 1ull << 30;      // the .onnx file (protobuf: < 2 GiB)
inline constexpr int kMaxOnnxNodes = 100000;               // nodes in the graph
inline constexpr uint64_t kMaxWeightBytes = 512ull << 20;  // decoded constants on the path

struct ImportOptions {
  std::vector<std::string> outputs;  // ONNX tensor names of the feature layers (1+)
  // Network input; 0: the graph input's static H and W (256x256 when dynamic).
  int input_w = 0, input_h = 0;
  std::string name;     // card name (default: the file's stem, else the graph name)
  std::string licence;  // card licence text
  std::string origin;   // card origin, e.g. "torchvision 0.14 resnet18, own weights"
  // Preprocessing written to the model file: x = (pixel * scale - mean) / std
  // per channel (pixels 0..255). torchvision: scale 1/255, ImageNet mean / std.
  float scale = 1.0f;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
};

// One requested layer in the backbone's output (channels [offset, offset+c)).
struct FeatureLayer {
  std::string tensor;
  int h = 0, w = 0, channels = 0;
  int stride_h = 1, stride_w = 1;  // product of the strides on its path
  int offset = 0;                  // first channel in the concatenated output
};

struct ImportResult {
  ModelSpec spec;              // what was written
  std::vector<uint8_t> bytes;  // WriteModel(spec), checked to load with LoadModel
  std::vector<FeatureLayer> features;
  int in_w = 0, in_h = 0, in_c = 3;     // network input
  int out_h = 0, out_w = 0, out_c = 0;  // the graph output
  int onnx_nodes_used = 0;              // ONNX nodes on the path (without Constant)
  int engine_nodes = 0;                 // nodes in the written graph
  int64_t opset = 0;                    // the model's default-domain opset
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

// Parses "a" (all channels) or "a,b,c" into three floats.
Status ParseChannelTriple(const std::string& text, const char* what, float out[3]);

}  // namespace flawlens::onnx_import
