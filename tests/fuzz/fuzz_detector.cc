// The detector on random pixel buffers, sizes, strides, pixel formats and
// regions of interest (a fixed model that uses every op; and the same net with
// a fixed pixel scale, mirror padding and edge calibration tables).
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "flawlens/detector.h"
#include "fuzz_common.h"
#include "test_models.h"

namespace {

// TinyUnetSpec's ops at a quarter of its cost (16x16 input, 4-8 channels):
// the harness is about pixel buffers, strides, formats and ROIs, so the
// network only needs to touch every op, cheaply.
flawlens::ModelSpec FuzzUnetSpec(bool pixel_scale) {
  flawlens::testing::SpecBuilder b(16, 16, 3, 5);
  b.Conv("enc1", "input", 4, 3, 1, 1, "relu")
      .Conv("enc2", "enc1", 8, 3, 2, 1, "leaky_relu", 1, 1, true, 0.1f)  // 8x8x8
      .Conv("dw", "enc2", 8, 3, 1, 1, "silu", /*groups=*/8)
      .Conv("pw", "dw", 8, 1, 1, 0, "none", 1, 1, /*bias=*/false)
      .Add("res", "pw", "enc2", "relu")
      .MaxPool("mp", "res", 2)                                           // 4x4x8
      .Pool("ap", "mp", /*max=*/false, 3, 1, 1, /*count_include_pad=*/false)
      .GlobalAvgPool("gap", "mp")
      .Dense("se", "gap", 8, "sigmoid")
      .Upsample("se_up", "se", "nearest", 4)
      .Add("gated", "ap", "se_up")
      .Upsample("up1", "gated", "bilinear", 2)                           // 8x8x8
      .Concat("cat1", {"up1", "res"})
      .Conv("dec1", "cat1", 4, 3, 1, 1, "relu")
      .Upsample("up2", "dec1", "nearest", 2)                             // 16x16x4
      .Concat("cat2", {"up2", "enc1"})
      .Conv("dec2", "cat2", 2, 3, 1, 2, "none", 1, /*dilation=*/2)
      .Activation("act", "dec2", "sigmoid")
      .ReduceChannels("head", "act", "mean");                            // 16x16x1
  flawlens::PreprocessConfig pre;
  pre.resize_w = pre.resize_h = 20;
  pre.crop = {2, 2, 16, 16};
  pre.channels = 3;
  if (pixel_scale) {
    pre.resize_w = pre.resize_h = 16;
    pre.crop = {};
    pre.pixel_scale = 0.37f;
    pre.norm = flawlens::NormMode::kLocalContrast;
    pre.lcn_sigma = 2;
    std::vector<float> mean(16), sd(16);
    for (int i = 0; i < 16; ++i) mean[i] = 0.01f * i, sd[i] = 0.5f + 0.1f * (i % 5);
    b.Tensor("edge.mean", {4, 4}, mean).Tensor("edge.std", {4, 4}, sd);
    return b.Build("head", pre,
                   R"({"blur_sigma":1.0,"reduce":"max","edge_mean":"edge.mean","edge_std":"edge.std"})",
                   R"({"offset":0.1,"scale":0.5,"threshold":2})");
  }
  return b.Build("head", pre,
                 R"({"blur_sigma":1.0,"reduce":"topk_mean","topk_fraction":0.05})",
                 R"({"offset":0.1,"scale":0.5,"threshold":2})");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<flawlens::Detector> dets[2] = {nullptr, nullptr};
  if (!dets[0]) {
    for (int k = 0; k < 2; ++k) {
      const std::vector<uint8_t> bytes = flawlens::WriteModel(FuzzUnetSpec(k == 1));
      auto d = flawlens::Detector::Create(bytes.data(), bytes.size(), {"simd", 1});
      if (!d.ok()) __builtin_trap();
      dets[k] = std::move(d).value();
    }
  }
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
  const bool scaled = (f & 0x20) != 0;
  flawlens::Detector* det = dets[scaled ? 1 : 0].get();
  // Pixel buffer exactly as large as the view claims (ASan catches overreads).
  const size_t row = stride > 0 ? size_t(stride) : size_t(w) * flawlens::BytesPerPixel(format);
  const size_t need = h > 0 ? row * (h - 1) + size_t(w) * flawlens::BytesPerPixel(format) : 0;
  std::vector<uint8_t> px(need);
  for (size_t i = 0; i < need; ++i) px[i] = i < in.size() ? in.data()[i] : uint8_t(i * 7);
  auto r = det->Detect({px.empty() ? nullptr : px.data(), w, h, format, stride}, roi);
  if (r.ok()) {
    // A valid image through a fixed, well-behaved model: finite score and map,
    // and the map rectangle lies inside the image (fixed pixel scale: the
    // kept cells' centres do, so within half a cell of it).
    const flawlens::Detection& d = **r;
    if (!std::isfinite(d.score)) __builtin_trap();
    if (d.map.size() != size_t(d.map_width) * d.map_height || d.map.empty()) __builtin_trap();
    for (float v : d.map) {
      if (!std::isfinite(v)) __builtin_trap();
    }
    const flawlens::RectF& m = d.map_rect;
    const float sx = scaled ? 0.5f * m.w / d.map_width : 0, sy = scaled ? 0.5f * m.h / d.map_height : 0;
    if (!(m.x >= -1e-3f - sx && m.y >= -1e-3f - sy && m.w > 0 && m.h > 0 &&
          m.x + m.w <= w + 1e-2f + sx && m.y + m.h <= h + 1e-2f + sy)) {
      __builtin_trap();
    }
  }
  return 0;
}
