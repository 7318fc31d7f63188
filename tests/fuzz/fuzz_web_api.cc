// The web API's byte entry points (src/api/web_detector.h, what the page
// calls through Embind): model bytes -> load(); then encoded-image bytes ->
// detectEncoded() and raw pixels -> detect() with fuzzed size and format.
// The same model bytes -> WebTeacher (src/api/web_teacher.h): begin(), frames
// from the fuzzed pixels with a fuzzed region, fit().
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "api/web_detector.h"
#include "api/web_teacher.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flawlens::fuzz::Reader in(data, size);
  const uint32_t model_len = in.Take<uint32_t>() % (in.size() + 1);
  const uint8_t* model = in.data();
  flawlens::WebDetector d;
  if (model_len > 0) std::memcpy(d.buffer(model_len), model, model_len);
  flawlens::fuzz::Reader rest(in.data() + model_len, in.size() - model_len);
  const std::string err = d.load("simd", 1);
  if (!err.empty() || !d.loaded()) return 0;
  // Cost guard, as in fuzz_model_loader.
  const std::string info = d.info();
  const size_t at = info.find("\"macs\":");
  if (at == std::string::npos) __builtin_trap();  // info() must describe the model
  if (std::strtoll(info.c_str() + at + 7, nullptr, 10) > flawlens::fuzz::kMaxFuzzMacs) return 0;
  const int w = rest.Take<uint8_t>(), h = rest.Take<uint8_t>();
  const char* formats[] = {"rgba", "rgb", "gray", "bgr"};
  const std::string fmt = formats[rest.Take<uint8_t>() % 4];
  d.buffer(rest.size());
  if (rest.size() > 0) std::memcpy(d.buffer(rest.size()), rest.data(), rest.size());
  if (flawlens::fuzz::HeaderPixels(rest.data(), rest.size()) <= flawlens::fuzz::kMaxFuzzPixels) {
    (void)d.detectEncoded();
  }
  d.buffer(rest.size());
  if (rest.size() > 0) std::memcpy(d.buffer(rest.size()), rest.data(), rest.size());
  (void)d.detect(w, h, fmt, 0, 0, 0, 0);

  // Teaching on the same bytes, for models the cost guard above passed (a
  // taught model loads as a detector and can be taught again; most fuzzed
  // models have no backbone: begin() must say so). Small projection: the
  // fit's cost is cells x dims^3.
  flawlens::WebTeacher t;
  if (model_len > 0) std::memcpy(t.buffer(model_len), model, model_len);
  if (!t.begin("{\"dims\":4,\"seed\":" + std::to_string(rest.Take<uint8_t>()) + "}").empty()) {
    return 0;
  }
  const double rx = rest.Take<int8_t>(), ry = rest.Take<int8_t>();
  const double rw = rest.Take<uint8_t>(), rh = rest.Take<uint8_t>();
  const int frames = rest.Take<uint8_t>() % 24;
  for (int i = 0; i < frames; ++i) {
    uint8_t* px = t.buffer(rest.size());
    if (rest.size() > 0) {
      std::memcpy(px, rest.data(), rest.size());
      px[size_t(i) % rest.size()] ^= uint8_t(i * 37 + 1);  // frames differ
    }
    // Camera frames and, every third, a photo of one of two parts (groups).
    const std::string group = i % 3 == 2 ? "part" + std::to_string(i % 2) : "";
    (void)t.addFrame(w, h, fmt, i % 2 ? rx : 0, i % 2 ? ry : 0, i % 2 ? rw : 0, i % 2 ? rh : 0,
                     group);
  }
  (void)t.fit("{\"name\":\"fuzz\",\"card\":{\"roi\":null}}", nullptr);
  (void)t.result();
  return 0;
}
