// Embind facade: the only file that knows about JavaScript.
//
// A thin `Detector` class over flawlens::Detector. Errors never unwind
// through wasm (no C++ exceptions, and a JS throw from C++ would leak the C
// stack): every fallible method returns "" on success or "code: message",
// and web/js/engine.mjs turns that into a JS exception in one place.
//
// Bytes cross the boundary through buffers owned by the instance and exposed
// as typed_memory_views, taken fresh after every call (memory growth detaches
// old views): JS writes pixels/model bytes in place, reads results out.
#include <emscripten/bind.h>
#include <emscripten/val.h>

#include <malloc.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/limits.h"
#include "flawlens/detector.h"

namespace {

using emscripten::typed_memory_view;
using emscripten::val;

std::string ErrorString(const flawlens::Status& s) { return s.ToString(); }

// JSON string escaping for the info() document.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

class WasmDetector {
 public:
  // Stats layout shared with engine.mjs (Float64Array view).
  enum Stat {
    kScore, kRawScore, kThreshold, kAnomalous, kMapWidth, kMapHeight,
    kRectX, kRectY, kRectW, kRectH, kPreMs, kNetMs, kPostMs, kTotalMs, kNumStats
  };

  // A buffer of `bytes` bytes for JS to fill (model bytes, pixels or an
  // encoded image). Returns null when the size is unreasonable.
  val buffer(double bytes) {
    if (!(bytes >= 0) || bytes > static_cast<double>(flawlens::kMaxModelBytes)) return val::null();
    bytes_.resize(static_cast<size_t>(bytes));
    return val(typed_memory_view(bytes_.size(), bytes_.data()));
  }

  // Load the model from buffer(). On failure the previous model stays.
  std::string load(const std::string& backend) {
    flawlens::DetectorOptions opts;
    opts.backend = backend;
    auto det = flawlens::Detector::Create(bytes_.data(), bytes_.size(), opts);
    release_bytes();
    if (!det.ok()) return ErrorString(det.status());
    det_ = std::move(det).value();
    return "";
  }

  bool loaded() const { return det_ != nullptr; }

  std::string info() const {
    if (!det_) return "{}";
    const flawlens::ModelInfo& i = det_->info();
    char nums[512];
    std::snprintf(nums, sizeof nums,
                  "\"inputWidth\":%d,\"inputHeight\":%d,\"inputChannels\":%d,\"mapWidth\":%d,"
                  "\"mapHeight\":%d,\"threshold\":%.9g,\"mapLow\":%.9g,\"mapHigh\":%.9g,"
                  "\"parameters\":%lld,\"macs\":%lld",
                  i.input_width, i.input_height, i.input_channels, i.map_width, i.map_height,
                  i.threshold, i.map_low, i.map_high, static_cast<long long>(i.parameters),
                  static_cast<long long>(i.macs));
    return "{\"name\":" + Quote(i.name) + ",\"backend\":" + Quote(i.backend) + "," + nums +
           ",\"card\":" + (i.card_json.empty() ? std::string("{}") : i.card_json) + "}";
  }

  // Pixels are in buffer(): width * height * bpp bytes, rows packed.
  std::string detect(int width, int height, const std::string& format, double rx, double ry,
                     double rw, double rh) {
    if (!det_) return "invalid_argument: no model loaded";
    flawlens::PixelFormat pf;
    if (format == "rgba") pf = flawlens::PixelFormat::kRGBA8;
    else if (format == "rgb") pf = flawlens::PixelFormat::kRGB8;
    else if (format == "gray") pf = flawlens::PixelFormat::kGray8;
    else return "invalid_argument: pixel format must be 'rgba', 'rgb' or 'gray', got '" + format + "'";
    if (width <= 0 || height <= 0 || width > flawlens::kMaxImageSide ||
        height > flawlens::kMaxImageSide) {
      return "invalid_argument: image size " + std::to_string(width) + "x" +
             std::to_string(height) + " is out of range";
    }
    const uint64_t need = uint64_t(width) * uint64_t(height) * flawlens::BytesPerPixel(pf);
    if (bytes_.size() < need) {
      return "invalid_argument: pixel buffer holds " + std::to_string(bytes_.size()) +
             " bytes, a " + std::to_string(width) + "x" + std::to_string(height) + " " + format +
             " image needs " + std::to_string(need);
    }
    flawlens::ImageView view{bytes_.data(), width, height, pf, 0};
    flawlens::RectF roi{static_cast<float>(rx), static_cast<float>(ry), static_cast<float>(rw),
                        static_cast<float>(rh)};
    return Finish(det_->Detect(view, roi));
  }

  // An encoded PNG / JPEG / BMP is in buffer().
  std::string detectEncoded() {
    if (!det_) return "invalid_argument: no model loaded";
    return Finish(det_->DetectEncoded(bytes_.data(), bytes_.size()));
  }

  val stats() { return val(typed_memory_view(kNumStats, stats_)); }
  val map() {
    return val(typed_memory_view(last_ ? last_->map.size() : 0,
                                 last_ ? last_->map.data() : nullptr));
  }

  double threshold() const { return det_ ? det_->threshold() : 0.0; }
  void setThreshold(double t) {
    if (det_) det_->set_threshold(static_cast<float>(t));
  }
  void resetThreshold() {
    if (det_) det_->reset_threshold();
  }

  // Raw network for benchmarks: input floats are written into floats(n).
  val floats(double count) {
    if (!(count >= 0) || count > static_cast<double>(flawlens::kMaxActivationElements)) {
      return val::null();
    }
    floats_.resize(static_cast<size_t>(count));
    return val(typed_memory_view(floats_.size(), floats_.data()));
  }
  std::string runNetwork() {
    if (!det_) return "invalid_argument: no model loaded";
    output_.resize(det_->network_output_count());
    flawlens::Status s = det_->RunNetwork(floats_.data(), floats_.size(), output_.data(),
                                          output_.size());
    return s.ok() ? "" : ErrorString(s);
  }
  val output() { return val(typed_memory_view(output_.size(), output_.data())); }

  // Free the byte buffer (e.g. after a large model or image was passed).
  void release_bytes() { std::vector<uint8_t>().swap(bytes_); }
  void releaseBytes() { release_bytes(); }

 private:
  std::string Finish(const flawlens::Result<const flawlens::Detection*>& r) {
    if (!r.ok()) {
      last_ = nullptr;
      return ErrorString(r.status());
    }
    last_ = r.value();
    const flawlens::Detection& d = *last_;
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

  std::unique_ptr<flawlens::Detector> det_;
  std::vector<uint8_t> bytes_;
  std::vector<float> floats_, output_;
  double stats_[kNumStats] = {};
  const flawlens::Detection* last_ = nullptr;
};

// Bytes malloc'd and not freed (dlmalloc's mallinfo): for leak tests.
double HeapInUse() { return static_cast<double>(mallinfo().uordblks); }

}  // namespace

EMSCRIPTEN_BINDINGS(flawlens) {
  emscripten::function("heapInUse", &HeapInUse);
  emscripten::class_<WasmDetector>("Detector")
      .constructor<>()
      .function("buffer", &WasmDetector::buffer)
      .function("load", &WasmDetector::load)
      .function("loaded", &WasmDetector::loaded)
      .function("info", &WasmDetector::info)
      .function("detect", &WasmDetector::detect)
      .function("detectEncoded", &WasmDetector::detectEncoded)
      .function("stats", &WasmDetector::stats)
      .function("map", &WasmDetector::map)
      .function("threshold", &WasmDetector::threshold)
      .function("setThreshold", &WasmDetector::setThreshold)
      .function("resetThreshold", &WasmDetector::resetThreshold)
      .function("floats", &WasmDetector::floats)
      .function("runNetwork", &WasmDetector::runNetwork)
      .function("output", &WasmDetector::output)
      .function("releaseBytes", &WasmDetector::releaseBytes);
}
