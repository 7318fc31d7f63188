// The seed CNN as a model file, run natively and in wasm with matching outputs.
//
// The model (tests/test_models.h, fixed-seed weights), the input image and the
// input tensor are generated bit-identically on every platform. The golden
// values in tests/data/seed_cnn_golden.txt were produced by the scalar
// reference backend natively; this same test binary, built natively and with
// Emscripten (run under node), must reproduce them with every backend it has
// (ref, simd, and xnnpack natively) within kTolerance.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "flawlens/detector.h"
#include "nn/backend.h"
#include "kernels/backends.h"
#include "test_models.h"

namespace flawlens {
namespace {

// float32 accumulation order differs between kernels (SIMD, Winograd, FMA in
// XNNPACK): outputs agree to ~1e-6 relative; the sigmoid output is O(0.1-1).
constexpr double kTolerance = 2e-5;
const char* kGoldenPath = FLAWLENS_SOURCE_DIR "/tests/data/seed_cnn_golden.txt";

std::vector<uint8_t> TestImage(int w, int h, uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<uint8_t> px(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        // Smooth pattern + noise, so resizing matters.
        const double v = 128 + 60 * std::sin(0.11 * x + 0.7 * c) * std::cos(0.07 * y) +
                         25 * rng.Uniform();
        px[(size_t(y) * w + x) * 3 + c] = static_cast<uint8_t>(std::lround(std::fmin(255, std::fmax(0, v))));
      }
    }
  }
  return px;
}

std::vector<float> TestTensor(size_t n, uint64_t seed) {
  testing::Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = 0.5f + 0.5f * rng.Uniform();
  return v;
}

// name -> value
std::map<std::string, double> Compute(const std::string& backend) {
  std::map<std::string, double> out;
  for (bool crop : {true, false}) {
    const std::vector<uint8_t> bytes = WriteModel(testing::SeedCnnSpec(crop));
    auto det = Detector::Create(bytes.data(), bytes.size(), DetectorOptions{backend, 1});
    EXPECT_TRUE(det.ok()) << det.status().ToString();
    if (!det.ok()) return out;
    const std::string tag = crop ? "seed32" : "anchor64";
    const ModelInfo& info = (*det)->info();
    const size_t n = size_t(info.input_width) * info.input_height * info.input_channels;
    std::vector<float> input = TestTensor(n, 1234), output((*det)->network_output_count());
    EXPECT_TRUE((*det)->RunNetwork(input.data(), n, output.data(), output.size()).ok());
    out[tag + ".network"] = output[0];
    const std::vector<uint8_t> img = TestImage(97, 83, 99);
    auto r = (*det)->Detect(ImageView{img.data(), 97, 83, PixelFormat::kRGB8, 0});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) out[tag + ".detect_raw"] = (*r)->raw_score;
  }
  return out;
}

std::map<std::string, double> ReadGolden() {
  std::map<std::string, double> g;
  std::ifstream f(kGoldenPath);
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::string k;
    double v;
    if (ss >> k >> v) g[k] = v;
  }
  return g;
}

TEST(SeedCnn, BackendsMatchGolden) {
  const std::map<std::string, double> golden = ReadGolden();
  if (golden.empty()) {
    // Bootstrap: write the reference values once (natively), then commit them.
    const auto ref = Compute("ref");
    std::ofstream f(kGoldenPath);
    f << "# seed CNN outputs from the scalar reference backend (tests/unit/seed_cnn_test.cc)\n";
    char buf[64];
    for (const auto& [k, v] : ref) {
      std::snprintf(buf, sizeof buf, "%.9g", v);
      f << k << " " << buf << "\n";
    }
    FAIL() << "no golden file: wrote " << kGoldenPath << " from the ref backend; commit it";
  }
  std::vector<std::string> backends = {"ref", "simd"};
  if (HaveXnnpack()) backends.push_back("xnnpack");
  for (const std::string& b : backends) {
    const auto got = Compute(b);
    ASSERT_EQ(got.size(), golden.size()) << b;
    for (const auto& [k, v] : golden) {
      ASSERT_TRUE(got.count(k)) << k;
      EXPECT_NEAR(got.at(k), v, kTolerance) << "backend " << b << ", " << k;
    }
  }
}

}  // namespace
}  // namespace flawlens
