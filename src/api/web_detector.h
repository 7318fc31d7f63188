// The web API's C++ side, free of Embind so it can be fuzzed and tested
// natively: src/wasm/bindings.cc binds this class 1:1 for JavaScript. Its
// methods are named as JavaScript sees them (camelCase, the module's
// `Detector` class), not in this repository's C++ style, so one name
// means one thing from C++ through engine.mjs.
//
// Every fallible method returns "" on success or "code: message"
// (web/js/engine.mjs turns that into a FlawlensError in one place). Bytes
// cross the boundary through buffers owned by the instance: JS writes model
// bytes / pixels / an encoded image into buffer(), reads results from stats()
// and map().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flawlens/detector.h"

namespace flawlens {

class WebDetector {
 public:
  // Stats layout shared with engine.mjs.
  enum Stat {
    kScore, kRawScore, kThreshold, kAnomalous, kMapWidth, kMapHeight,
    kRectX, kRectY, kRectW, kRectH, kPreMs, kNetMs, kPostMs, kTotalMs, kNumStats
  };

  // Resize the byte buffer to `bytes` (model file, pixels or encoded image).
  // Returns nullptr when the size is unreasonable.
  uint8_t* buffer(double bytes);
  size_t bufferSize() const { return bytes_.size(); }
  void releaseBytes();

  // Load the model in buffer(). threads: how many the executor splits its
  // ops over (>= 1; more than the module can run is clamped, and the
  // single-thread module runs one). On failure the previous model stays.
  std::string load(const std::string& backend, int threads);
  bool loaded() const { return det_ != nullptr; }
  std::string info() const;  // JSON document (engine.mjs parses it)

  // Pixels are in buffer(): width * height * bpp bytes, rows packed.
  std::string detect(int width, int height, const std::string& format, double rx, double ry,
                     double rw, double rh);
  // An encoded PNG / JPEG / BMP is in buffer().
  std::string detectEncoded();

  const double* stats() const { return stats_; }
  const float* map() const { return last_ ? last_->map.data() : nullptr; }
  size_t mapSize() const { return last_ ? last_->map.size() : 0; }

  double threshold() const { return det_ ? det_->threshold() : 0.0; }
  void setThreshold(double t);
  void resetThreshold();

  // The threshold's meaning (fit/threshold.h, the rule of `flawlens train`
  // and `flawlens calibrate`): the estimated share of new good parts flagged
  // at threshold t, from the model's good-score summary (NaN without one).
  double falseAlarmRate(double t) const;
  // "about 1 in 50 good parts" for a rate.
  static std::string describeRate(double rate);
  // "Calibrate here": the threshold for a target rate from the scores of
  // good frames (floats(n) holds them): fit::EstimateThreshold, at least
  // half a score unit above the highest frame. JSON {threshold, rate,
  // frames, extrapolated, warnings: [..]} or "" with the error in lastError().
  std::string thresholdForScores(double count, double rate);
  std::string lastError() const { return last_error_; }

  // Raw network for benchmarks: input floats are written into floats(n).
  float* floats(double count);
  size_t floatsSize() const { return floats_.size(); }
  std::string runNetwork();
  const float* output() const { return output_.data(); }
  size_t outputSize() const { return output_.size(); }

 private:
  std::string Finish(const Result<const Detection*>& r);

  std::unique_ptr<Detector> det_;
  std::vector<uint8_t> bytes_;
  std::vector<float> floats_, output_;
  double stats_[kNumStats] = {};
  const Detection* last_ = nullptr;
  std::string last_error_;
};

}  // namespace flawlens
