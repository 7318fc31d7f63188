// Image decode (PNG/JPEG/BMP via stb) + preprocessing with a fuzzed config.
#include <cstdint>
#include <vector>

#include "fuzz_common.h"
#include "image/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  flawlens::fuzz::Reader in(data, size);
  flawlens::PreprocessConfig c;
  c.resize_w = 1 + in.Take<uint8_t>() % 96;
  c.resize_h = 1 + in.Take<uint8_t>() % 96;
  const uint8_t crop = in.Take<uint8_t>();
  if (crop & 1) c.crop = {crop % 7, (crop >> 3) % 5, c.resize_w / 2 + 1, c.resize_h / 2 + 1};
  c.channels = (crop & 2) ? 1 : 3;
  c.norm = (crop & 4) ? flawlens::NormMode::kLocalContrast : flawlens::NormMode::kMeanStd;
  c.lcn_sigma = 0.5f + in.Take<uint8_t>() % 16;
  flawlens::RectF roi;
  if (crop & 8) roi = {float(in.Take<int8_t>()), float(in.Take<int8_t>()),
                       float(in.Take<uint8_t>()), float(in.Take<uint8_t>())};

  if (flawlens::fuzz::HeaderPixels(in.data(), in.size()) > flawlens::fuzz::kMaxFuzzPixels) return 0;
  auto img = flawlens::DecodeImage(in.data(), in.size());
  if (!img.ok()) return 0;
  if (!c.Validate().ok()) return 0;
  std::vector<float> out(size_t(c.out_w()) * c.out_h() * c.channels);
  flawlens::PreprocessScratch scratch;
  flawlens::RectF covered;
  auto s = flawlens::Preprocess(img->view(), c, roi, out.data(), &scratch, &covered);
  (void)s;
  return 0;
}
