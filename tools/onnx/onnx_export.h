// A fitted flawlens model as a standard ONNX graph (opset 17): `flawlens
// export-onnx` (export_command.cc is only the CLI wiring).
//
// The graph computes what the detector computes from the network input
// (src/detect/detector.cc), so that ONNX Runtime / OpenVINO on a station give
// the engine's score and map:
//
//   image [batch, C, H, W] (resized + cropped RGB or gray, values 0..255)
//     -> the model's normalisation (scale, mean / std, or local contrast)
//     -> the network (every engine op; NHWC becomes NCHW)
//     -> sigmoid, map blur, per-cell and edge calibration
//     -> anomaly_map [batch, 1, h, w] = (map - offset) / scale
//     -> pred_score [batch]  = (reduce(map) - offset) / scale, reduce max / mean / top-k mean
//     -> pred_label [batch]  = pred_score >= threshold (bool)
//
// with an anomalib-style description in metadata_props (task, thresholds,
// input size, transform, normalisation) and the model's own JSON sections.
// What cannot be expressed as a fixed graph is an error naming the node or
// the setting (a fixed pixel scale: the map kept depends on each image; a
// max-pool window that lies entirely in padding; a map with more than one
// channel). Weights are copied exactly; only the layout changes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "flawlens/image.h"
#include "model/model.h"

namespace flawlens::onnx_export {

// What the exported graph reads (always NCHW float32, any batch size, the network
// input's size and channels: the model's resize and crop, and its channel
// conversion, are done by the caller).
enum class InputMode {
  kPixels,      // channel values 0..255 (default): normalisation in the graph
  kUnit,        // channel values 0..1 (pixel / 255): normalisation in the graph
  kNormalized,  // the engine's network input: the caller normalises too
};
const char* InputModeName(InputMode mode);  // "pixels", "unit", "normalized"
Result<InputMode> ParseInputMode(const std::string& name);

inline constexpr int kOpset = 17;
inline constexpr int64_t kIrVersion = 8;  // the IR of opset 17 (ONNX 1.12)

inline constexpr const char* kInputName = "image";
inline constexpr const char* kScoreName = "pred_score";
inline constexpr const char* kMapName = "anomaly_map";
inline constexpr const char* kLabelName = "pred_label";
// The symbolic first dimension of the input and outputs: images are scored
// independently, any number at once.
inline constexpr const char* kBatchDim = "batch";

struct ExportOptions {
  InputMode input = InputMode::kPixels;
};

struct ExportResult {
  std::string onnx;  // the serialised ModelProto
  int input_c = 0, input_h = 0, input_w = 0;
  int map_h = 0, map_w = 0;
  int engine_nodes = 0, onnx_nodes = 0;
  int64_t initializer_floats = 0;
  std::string metadata_json;  // the "metadata" entry (anomalib's metadata.json)
};

// `bytes`: a flawlens model file (LoadModel's errors). kUnsupported: a
// setting or node the graph cannot express, named. kBadGraph: a network
// output with more than one channel (not a detector).
Result<ExportResult> ExportOnnx(const uint8_t* bytes, size_t size,
                                const ExportOptions& options = {});

// The tensor the exported graph reads for `image` (NCHW, 1 x C x H x W), by
// the engine's preprocessing: `roi` in pixels (w == 0: whole image), resize,
// crop, channel conversion, and for kNormalized the normalisation too. The
// reference input of the round-trip tests and `--test-data`.
Result<std::vector<float>> ExportInput(const Model& model, InputMode mode, const ImageView& image,
                                       const RectF& roi);

}  // namespace flawlens::onnx_export
