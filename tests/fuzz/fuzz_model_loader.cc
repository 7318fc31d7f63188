// Model loader on arbitrary bytes; models that load are also run once.
#include <cstdint>
#include <vector>

#include "flawlens/detector.h"
#include "fuzz_common.h"
#include "model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model = flawlens::LoadModel(data, size);
  if (!model.ok()) return 0;
  // Every backend gets its share (the input length picks one): "auto" is
  // XNNPACK natively, with its fallbacks.
  const char* backends[] = {"simd", "ref", "auto"};
  const char* backend = backends[size % 3];
  auto det = flawlens::Detector::Create(data, size, {backend, 1});
  if (!det.ok()) return 0;  // e.g. not a 1-channel map: a clean error is fine
  const int64_t budget = size % 3 == 1 ? flawlens::fuzz::kMaxFuzzMacs / 4  // scalar reference
                                       : flawlens::fuzz::kMaxFuzzMacs;
  if ((*det)->info().macs > budget) return 0;
  std::vector<uint8_t> px(13 * 7 * 3, 0x80);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 31);
  auto r = (*det)->Detect({px.data(), 13, 7, flawlens::PixelFormat::kRGB8, 0});
  (void)r;
  return 0;
}
