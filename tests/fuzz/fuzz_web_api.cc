// The web API's byte entry points (src/api/web_detector.h, what the page
// calls through Embind): model bytes -> load(); then encoded-image bytes ->
// detectEncoded() and raw pixels -> detect() with fuzzed size and format.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "api/web_detector.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flawlens::fuzz::Reader in(data, size);
  const uint32_t model_len = in.Take<uint32_t>() % (in.size() + 1);
  flawlens::WebDetector d;
  if (model_len > 0) std::memcpy(d.buffer(model_len), in.data(), model_len);
  flawlens::fuzz::Reader rest(in.data() + model_len, in.size() - model_len);
  const std::string err = d.load("simd");
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
  return 0;
}
