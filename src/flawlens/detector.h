// flawlens public API: model bytes in, anomaly score + anomaly map out.
//
//   auto det = flawlens::Detector::Create(bytes, size);   // Result<...>
//   if (!det.ok()) { puts(det.status().ToString().c_str()); return; }
//   auto r = (*det)->Detect(image_view);                  // Result<const Detection*>
//   if (r.ok()) printf("%.2f %s\n", (*r)->score, (*r)->anomalous ? "ANOMALY" : "ok");
//
// Everything is exception-free; errors come back as Status with a message.
// The public API is src/flawlens/: this header, flawlens/image.h (ImageView,
// RectF, PixelFormat, DecodeImage) and flawlens/status.h (Status, Result).
// The web API's header (src/api/web_detector.h) and the Embind bindings
// (src/wasm) include only these. tools/ goes further where it must: the
// CLI's calibrate and info rewrite and print a model file's calibration, card
// and preprocessing, which ModelInfo does not carry, so tools/cli includes
// model/model.h (and core/limits.h, to refuse oversized files the way the
// core does); the trainer writes model files and feeds the network through
// the same preprocessing as the page, so tools/train also includes model/
// and image/preprocess.h; the benchmarks time internals (image/, nn/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flawlens/image.h"
#include "flawlens/status.h"

namespace flawlens {

struct Model;
class Executor;

struct DetectorOptions {
  // "auto" (XNNPACK natively, own SIMD kernels in wasm), "simd", "ref", "xnnpack".
  std::string backend = "auto";
  int threads = 1;
};

struct Timings {
  double preprocess_ms = 0, network_ms = 0, postprocess_ms = 0, total_ms = 0;
};

struct Detection {
  float score = 0;        // normalised score (see model card); higher = more anomalous
  float raw_score = 0;    // before normalisation
  float threshold = 0;    // the threshold in force
  bool anomalous = false; // score >= threshold
  // Anomaly map in normalised score units, row-major map_height x map_width.
  std::vector<float> map;
  int map_width = 0, map_height = 0;
  // Rectangle of the input image (pixels) the map covers; map cell (i, j)
  // covers map_rect.x + (j + 0.5) * map_rect.w / map_width, etc.
  RectF map_rect;
  Timings timings;
};

struct ModelInfo {
  std::string name;
  int input_width = 0, input_height = 0, input_channels = 0;
  int map_width = 0, map_height = 0;
  float threshold = 0;      // calibrated threshold from the file
  // What the threshold means (model/FORMAT.md section 7): the target share of
  // new good parts flagged (NaN: not recorded) and the normalised scores of
  // the good images it was estimated from (sorted; good_images in all, from
  // good_groups parts or sessions). Empty for older models.
  float false_alarm_rate = __builtin_nanf("");
  std::vector<float> good_scores;
  int good_images = 0, good_groups = 0;
  float map_low = 0, map_high = 1;  // heatmap display range (normalised units)
  float pixel_scale = 0;    // > 0: fixed pixel scale (the map covers only the image)
  int64_t parameters = 0;
  int64_t macs = 0;         // multiply-accumulates per frame
  std::string card_json;    // the full model card
  std::string backend;      // backend actually used
};

class Detector {
 public:
  static Result<std::unique_ptr<Detector>> Create(const uint8_t* model_bytes, size_t size,
                                                  const DetectorOptions& options = {});
  ~Detector();

  // Score one image. `roi` in input pixels (w == 0: whole image). The returned
  // pointer is valid until the next call; steady-state calls allocate nothing.
  Result<const Detection*> Detect(const ImageView& image, const RectF& roi = {});
  // Decode (PNG/JPEG/BMP) then Detect.
  Result<const Detection*> DetectEncoded(const uint8_t* bytes, size_t size,
                                         const RectF& roi = {});

  // Raw network: NHWC input of input_width*input_height*input_channels floats
  // -> the network output (benchmarks and export tests).
  Status RunNetwork(const float* input, size_t input_count, float* output, size_t output_count);
  size_t network_output_count() const;

  const ModelInfo& info() const { return info_; }
  float threshold() const { return threshold_; }
  void set_threshold(float t) { threshold_ = t; }
  void reset_threshold();

 private:
  Detector();
  std::unique_ptr<Model> model_;
  std::unique_ptr<Executor> executor_;
  ModelInfo info_;
  float threshold_ = 0;
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
  Detection detection_;
};

}  // namespace flawlens
