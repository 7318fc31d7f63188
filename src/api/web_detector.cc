#include "api/web_detector.h"

#include <algorithm>
#include <cmath>

// The implementation is part of the core library and uses two of its
// internals: the documented size limits and the JSON writer (info()).
#include "core/limits.h"
#include "fit/threshold.h"
#include "model/json_value.h"

namespace flawlens {

uint8_t* WebDetector::buffer(double bytes) {
  if (!(bytes >= 0) || bytes > static_cast<double>(kMaxModelBytes)) return nullptr;
  bytes_.resize(static_cast<size_t>(bytes));
  return bytes_.data();
}

void WebDetector::releaseBytes() { std::vector<uint8_t>().swap(bytes_); }

std::string WebDetector::load(const std::string& backend, int threads) {
  if (threads < 1) {
    releaseBytes();
    return "invalid_argument: threads must be >= 1, got " + std::to_string(threads);
  }
  DetectorOptions opts;
  opts.backend = backend;
  opts.threads = threads;
  auto det = Detector::Create(bytes_.data(), bytes_.size(), opts);
  releaseBytes();
  if (!det.ok()) return det.status().ToString();
  det_ = std::move(det).value();
  last_ = nullptr;
  return "";
}

std::string WebDetector::info() const {
  if (!det_) return "{}";
  const ModelInfo& i = det_->info();
  JsonValue card = JsonValue::Object();  // card_json was re-serialised by the loader: it parses
  if (!i.card_json.empty() && !ParseJson(i.card_json.data(), i.card_json.size(), "card", &card).ok()) {
    card = JsonValue::Object();
  }
  JsonValue j = JsonValue::Object();
  j.Set("name", i.name)
      .Set("backend", i.backend)
      .Set("inputWidth", i.input_width)
      .Set("inputHeight", i.input_height)
      .Set("inputChannels", i.input_channels)
      .Set("mapWidth", i.map_width)
      .Set("mapHeight", i.map_height)
      .Set("threshold", i.threshold)
      .Set("falseAlarmRate", std::isnan(i.false_alarm_rate) ? JsonValue() : JsonValue(double(i.false_alarm_rate)))
      // The threshold's meaning in words (fit::DescribeRate), so the page
      // shows the CLI's wording.
      .Set("falseAlarmWords", std::isnan(i.false_alarm_rate) ? "" : fit::DescribeRate(i.false_alarm_rate))
      .Set("goodImages", i.good_images)
      .Set("goodGroups", i.good_groups)
      .Set("mapLow", i.map_low)
      .Set("mapHigh", i.map_high)
      .Set("pixelScale", i.pixel_scale)
      .Set("parameters", i.parameters)
      .Set("macs", i.macs)
      .Set("card", std::move(card));
  return j.Dump();  // never aborts; NaN/Inf become null
}

double WebDetector::falseAlarmRate(double t) const {
  if (!det_) return std::nan("");
  const ModelInfo& i = det_->info();
  Calibration c;
  c.good_scores = i.good_scores;
  c.good_images = i.good_images;
  return fit::EstimatedFalseAlarmRate(c, float(t));
}

std::string WebDetector::describeRate(double rate) { return fit::DescribeRate(rate); }

std::string WebDetector::thresholdForScores(double count, double rate) {
  last_error_.clear();
  if (!(count >= 0 && count <= double(floats_.size()))) {
    last_error_ = "invalid_argument: score count outside the buffer";
    return "";
  }
  std::vector<float> scores(floats_.begin(), floats_.begin() + size_t(count));
  const float highest = scores.empty() ? 0.0f : *std::max_element(scores.begin(), scores.end());
  auto e = fit::EstimateThreshold(std::move(scores), rate);
  if (!e.ok()) {
    last_error_ = e.status().ToString();
    return "";
  }
  // Frames of one scene are near-copies of each other: the threshold clears
  // the highest of them by half a score unit (the spread of good parts'
  // scores when the model was taught), so camera noise alone is not flagged.
  e->threshold = std::max(e->threshold, highest + 0.5f);
  JsonValue w = JsonValue::Array();
  for (const std::string& s : e->warnings) w.Push(s);
  JsonValue j = JsonValue::Object();
  j.Set("threshold", e->threshold)
      .Set("rate", e->rate)
      .Set("frames", e->scores)
      .Set("extrapolated", e->extrapolated)
      .Set("warnings", std::move(w));
  return j.Dump();
}

std::string WebDetector::detect(int width, int height, const std::string& format, double rx,
                                double ry, double rw, double rh) {
  if (!det_) return "invalid_argument: no model loaded";
  PixelFormat pf;
  if (format == "rgba") {
    pf = PixelFormat::kRGBA8;
  } else if (format == "rgb") {
    pf = PixelFormat::kRGB8;
  } else if (format == "gray") {
    pf = PixelFormat::kGray8;
  } else {
    return "invalid_argument: pixel format must be 'rgba', 'rgb' or 'gray', got '" + format + "'";
  }
  if (width <= 0 || height <= 0 || width > kMaxImageSide || height > kMaxImageSide) {
    return "invalid_argument: image size " + std::to_string(width) + "x" + std::to_string(height) +
           " is out of range (1.." + std::to_string(kMaxImageSide) + ")";
  }
  const uint64_t need = uint64_t(width) * uint64_t(height) * BytesPerPixel(pf);
  if (bytes_.size() < need) {
    return "invalid_argument: pixel buffer holds " + std::to_string(bytes_.size()) +
           " bytes, a " + std::to_string(width) + "x" + std::to_string(height) + " " + format +
           " image needs " + std::to_string(need);
  }
  for (double v : {rx, ry, rw, rh}) {
    if (!std::isfinite(v)) return "invalid_argument: region of interest must be finite numbers";
  }
  ImageView view{bytes_.data(), width, height, pf, 0};
  RectF roi{static_cast<float>(rx), static_cast<float>(ry), static_cast<float>(rw),
            static_cast<float>(rh)};
  return Finish(det_->Detect(view, roi));
}

std::string WebDetector::detectEncoded() {
  if (!det_) return "invalid_argument: no model loaded";
  return Finish(det_->DetectEncoded(bytes_.data(), bytes_.size()));
}

void WebDetector::setThreshold(double t) {
  if (det_ && std::isfinite(t)) det_->set_threshold(static_cast<float>(t));
}

void WebDetector::resetThreshold() {
  if (det_) det_->reset_threshold();
}

float* WebDetector::floats(double count) {
  if (!(count >= 0) || count > static_cast<double>(kMaxActivationElements)) return nullptr;
  floats_.resize(static_cast<size_t>(count));
  return floats_.data();
}

std::string WebDetector::runNetwork() {
  if (!det_) return "invalid_argument: no model loaded";
  output_.resize(det_->network_output_count());
  Status s = det_->RunNetwork(floats_.data(), floats_.size(), output_.data(), output_.size());
  return s.ok() ? "" : s.ToString();
}

std::string WebDetector::Finish(const Result<const Detection*>& r) {
  if (!r.ok()) {
    last_ = nullptr;
    return r.status().ToString();
  }
  last_ = r.value();
  const Detection& d = *last_;
  stats_[kScore] = d.score;
  stats_[kRawScore] = d.raw_score;
  stats_[kThreshold] = d.threshold;
  stats_[kAnomalous] = d.anomalous ? 1 : 0;
  stats_[kMapWidth] = d.map_width;
  stats_[kMapHeight] = d.map_height;
  stats_[kRectX] = d.map_rect.x;
  stats_[kRectY] = d.map_rect.y;
  stats_[kRectW] = d.map_rect.w;
  stats_[kRectH] = d.map_rect.h;
  stats_[kPreMs] = d.timings.preprocess_ms;
  stats_[kNetMs] = d.timings.network_ms;
  stats_[kPostMs] = d.timings.postprocess_ms;
  stats_[kTotalMs] = d.timings.total_ms;
  return "";
}

}  // namespace flawlens
