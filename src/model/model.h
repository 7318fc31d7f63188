// The flawlens model file: a safetensors file (8-byte little-endian header
// length, JSON header, raw little-endian tensors) whose `__metadata__` holds
// the network, preprocessing, postprocessing, calibration and model card as
// JSON strings. Full spec: model/FORMAT.md.
//
//   __metadata__ = {
//     "format": "flawlens", "format_version": "1",
//     "graph":        "{...}",  // see below
//     "preprocess":   "{...}",  // PreprocessConfig
//     "postprocess":  "{...}",  // PostprocessConfig
//     "calibration":  "{...}",  // Calibration
//     "card":         "{...}"   // free-form model card (name, created, metrics, ...)
//   }
//
// graph = {"input": {"h":H, "w":W, "c":C},
//          "nodes": [{"name": "enc1", "op": "conv2d", "inputs": ["input"],
//                     "out_channels": 32, "kernel": [3,3], "stride": [1,1],
//                     "dilation": [1,1], "pad": [top,left,bottom,right],
//                     "groups": 1, "activation": "relu", "alpha": 0.01,
//                     "weight": "enc1.weight", "bias": "enc1.bias"}, ...],
//          "output": "head"}
// ops: conv2d, activation, maxpool2d, avgpool2d (+ "count_include_pad"),
//      global_avgpool, dense (out_channels, weight, bias), upsample
//      ("mode": "nearest"|"bilinear", "scale": [sh, sw]), concat, add,
//      reduce_channels ("mode": "sum_squares"|"min"|"max"|"mean"),
//      mul (2 inputs: in1 of in0's shape or 1x1xC, broadcast over h, w),
//      position_mahalanobis (weight [GH, GW, D, D] whitening matrices of
//      GH x GW regions of cells, bias [H, W, D] means mu_p, both required;
//      HxWxD -> HxWx1, out[p] = sum_k (sum_j A_r(p)[k][j] (x_p[j] - mu_p[j]))^2).
// activation (fused into conv2d, dense, add, mul; or an activation node):
//      "none", "relu", "leaky_relu" (x < 0 ? alpha x : x, alpha 0.01),
//      "silu", "sigmoid", "relu6" (min(max(x, 0), 6)),
//      "hard_swish" (x * relu6(x + 3) * alpha, alpha 1/6),
//      "hard_sigmoid" (relu6(x + 3) * alpha, alpha 1/6).
// "input" names the network input; any other input names an earlier node.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "image/preprocess.h"
#include "nn/graph.h"

namespace flawlens {

// Versions this build reads: 1, and 2 = 1 plus preprocess.geometry
// "keep_aspect" (a file that old readers would stretch). Writers write the
// lowest version that holds the file: 2 only with keep_aspect.
inline constexpr int kFormatVersion = 2;
inline constexpr int kMinFormatVersion = 1;

// The safetensors framing: the file's first 8 bytes are the JSON header's
// length, little-endian (`bytes` has at least 8). Shared by the loader, the
// writer and tools that rewrite a header.
inline uint64_t ReadHeaderLength(const uint8_t* bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  return n;
}
inline void WriteHeaderLength(uint64_t n, uint8_t* bytes) {
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
}

enum class ScoreReduce { kMax, kTopKMean, kMean };

struct PostprocessConfig {
  bool sigmoid = false;           // apply sigmoid to the raw network map
  float blur_sigma = 0.0f;        // Gaussian blur of the map, in map cells (0 = none)
  ScoreReduce reduce = ScoreReduce::kMax;
  float topk_fraction = 0.01f;    // kTopKMean: mean of the top fraction of cells
  // Optional per-cell calibration of the map (e.g. border effects), shape
  // [map_h, map_w]: cell = (cell - cell_mean) / cell_std. Applied after blur.
  TensorRef cell_mean, cell_std;
  // Optional calibration by distance to the edges of the kept map (h x w;
  // with a fixed pixel scale only the cells over the image), shape [S, S],
  // S = 2K even, 2 <= S <= 128: row r(y) = y <= h-1-y ? min(y, K-1)
  // : S-1-min(h-1-y, K-1), column likewise; cell = (cell - edge_mean[r][c])
  // / edge_std[r][c]. Applied after the cell calibration (FORMAT.md).
  TensorRef edge_mean, edge_std;
};

// Row (or column) of the edge tables for index i of n along one axis of the
// kept map, table side s = 2K: the distance to the nearer edge, counted from
// the top / left in the first half of the table, from the bottom / right in
// the second (FORMAT.md; shared by the detector and the trainer).
inline int EdgeTableIndex(int i, int n, int s) {
  const int k = s / 2;
  const int from_end = n - 1 - i;
  return i <= from_end ? (i < k - 1 ? i : k - 1) : s - 1 - (from_end < k - 1 ? from_end : k - 1);
}

// score = (raw_score - offset) / scale. Calibrated on held-out good images so
// that a score means the same in the CLI and the page.
struct Calibration {
  float offset = 0.0f;
  float scale = 1.0f;
  float threshold = 0.0f;          // on the normalised score; >= threshold -> anomalous
  // Optional extra numbers (NaN when absent).
  float f1_threshold = __builtin_nanf("");
  // Map display range (normalised map units) for heatmaps: [map_low, map_high].
  float map_low = 0.0f, map_high = 1.0f;
  // What the threshold means (optional; FORMAT.md section 7): the target
  // fraction of new good parts flagged (NaN: not recorded), and the
  // normalised scores of good images it was estimated from (sorted; at most
  // kMaxCalibrationScores order statistics of good_images scores from
  // good_groups distinct parts or sessions).
  float false_alarm_rate = __builtin_nanf("");
  std::vector<float> good_scores;
  int good_images = 0, good_groups = 0;
};
inline constexpr int kMaxCalibrationScores = 4096;

struct Model {
  Graph graph;
  PreprocessConfig preprocess;
  PostprocessConfig postprocess;
  Calibration calibration;
  std::string name;       // card["name"] or "unnamed"
  std::string card_json;  // the card object, re-serialised

  // Tensor storage (16-byte aligned, host float). TensorRefs point here.
  std::vector<std::unique_ptr<float[]>> storage;
};

// Parse and validate everything (see model/FORMAT.md "Validation"); never
// reads out of bounds, never aborts. Weights are copied out of `bytes`.
Result<std::unique_ptr<Model>> LoadModel(const uint8_t* bytes, size_t size);

// ---- Writing (used by the trainer, tests and fuzz seeds) -------------------
struct ModelTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct ModelSpec {
  std::string graph_json;
  std::string preprocess_json;
  std::string postprocess_json = "{}";
  std::string calibration_json = "{}";
  std::string card_json = "{}";
  std::vector<ModelTensor> tensors;
};

// Serialise to safetensors bytes (tensors F32, sorted by name, 8-byte aligned).
std::vector<uint8_t> WriteModel(const ModelSpec& spec);

// JSON of configs, the exact inverse of what LoadModel parses.
std::string PreprocessToJson(const PreprocessConfig& config);
std::string CalibrationToJson(const Calibration& calibration);

}  // namespace flawlens
