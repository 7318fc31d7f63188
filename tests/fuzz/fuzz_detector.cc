// The detector on random pixel buffers, sizes, strides, pixel formats and
// regions of interest (a fixed model that uses every op).
#include <cstdint>
#include <memory>
#include <vector>

#include "flawlens/detector.h"
#include "fuzz_common.h"
#include "test_models.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<flawlens::Detector> det = [] {
    const std::vector<uint8_t> bytes = flawlens::WriteModel(flawlens::testing::TinyUnetSpec());
    auto d = flawlens::Detector::Create(bytes.data(), bytes.size(), {"simd", 1});
    if (!d.ok()) __builtin_trap();
    return std::move(d).value();
  }();
  flawlens::fuzz::Reader in(data, size);
  const int w = in.Take<uint8_t>() % 200;  // 0 allowed: must be a clean error
  const int h = in.Take<uint8_t>() % 200;
  const uint8_t f = in.Take<uint8_t>();
  const auto format = f % 3 == 0   ? flawlens::PixelFormat::kGray8
                      : f % 3 == 1 ? flawlens::PixelFormat::kRGB8
                                   : flawlens::PixelFormat::kRGBA8;
  const int stride = (f & 0x80) ? in.Take<uint8_t>() : 0;  // may be too small: must be caught
  flawlens::RectF roi{float(in.Take<int16_t>()) / 8, float(in.Take<int16_t>()) / 8,
                      float(in.Take<int16_t>()) / 8, float(in.Take<int16_t>()) / 8};
  if (f & 0x40) roi.w = __builtin_nanf("");
  // Pixel buffer exactly as large as the view claims (ASan catches overreads).
  const size_t row = stride > 0 ? size_t(stride) : size_t(w) * flawlens::BytesPerPixel(format);
  const size_t need = h > 0 ? row * (h - 1) + size_t(w) * flawlens::BytesPerPixel(format) : 0;
  std::vector<uint8_t> px(need);
  for (size_t i = 0; i < need; ++i) px[i] = i < in.size() ? in.data()[i] : uint8_t(i * 7);
  auto r = det->Detect({px.empty() ? nullptr : px.data(), w, h, format, stride}, roi);
  (void)r;
  return 0;
}
