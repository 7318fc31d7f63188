// Detector postprocessing with a fixed pixel scale (preprocess.pixel_scale):
// only the map cells over the image are scored and returned, the map
// rectangle is where they lie on the input, and the mirror padding never
// decides the score.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "flawlens/detector.h"
#include "image/preprocess.h"
#include "model/model.h"
#include "test_models.h"

namespace flawlens {
namespace {

using testing::SpecBuilder;

// A side x side gray canvas at pixel scale 1, raw pixel values (scale 1,
// mean 0, std 1), a 4x4 average pool named "map": the map is the 4x4 block
// means. Add tensors to the builder, then Build("map", the config, ...).
SpecBuilder BlockMeans(int side, PreprocessConfig* pre) {
  SpecBuilder b(side, side, 1);
  b.Pool("map", "input", /*max=*/false, 4);
  pre->resize_w = pre->resize_h = side;
  pre->channels = 1;
  pre->scale = 1.0f;
  pre->pixel_scale = 1.0f;
  return b;
}

// 16x16 canvas. The cell calibration subtracts -1000 on the border ring of
// cells, so a border cell would win the maximum by ~1000 if the padding were
// scored.
ModelSpec PaddedSpec() {
  PreprocessConfig pre;
  SpecBuilder b = BlockMeans(16, &pre);
  std::vector<float> mean(16), sd(16, 1.0f);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) mean[y * 4 + x] = (x == 0 || x == 3 || y == 0 || y == 3) ? -1000 : 0;
  b.Tensor("post.cell_mean", {4, 4}, mean).Tensor("post.cell_std", {4, 4}, sd);
  nlohmann::json post = {{"reduce", "max"}, {"cell_mean", "post.cell_mean"},
                         {"cell_std", "post.cell_std"}};
  return b.Build("map", pre, post.dump(), R"({"offset":0,"scale":1,"threshold":100})");
}

struct Gray {
  std::vector<uint8_t> px;
  int w, h;
  ImageView view() const { return {px.data(), w, h, PixelFormat::kGray8, 0}; }
};

TEST(DetectorPixelScale, ScoresAndReturnsOnlyTheCellsOverTheImage) {
  const std::vector<uint8_t> bytes = WriteModel(PaddedSpec());
  for (const char* backend : {"ref", "simd", "xnnpack"}) {
#if defined(__EMSCRIPTEN__)
    if (std::string(backend) == "xnnpack") continue;
#endif
    auto det = Detector::Create(bytes.data(), bytes.size(), {backend, 1});
    ASSERT_TRUE(det.ok()) << det.status().ToString();
    // An 8x8 image sits at (4, 4) on the canvas: cells 1..2 on each axis.
    Gray img{std::vector<uint8_t>(64), 8, 8};
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) img.px[y * 8 + x] = static_cast<uint8_t>(x < 4 ? 10 : 50 + y);
    auto r = (*det)->Detect(img.view());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const Detection& d = **r;
    ASSERT_EQ(d.map_width, 2);
    ASSERT_EQ(d.map_height, 2);
    ASSERT_EQ(d.map.size(), 4u);
    EXPECT_FLOAT_EQ(d.map_rect.x, 0);
    EXPECT_FLOAT_EQ(d.map_rect.y, 0);
    EXPECT_FLOAT_EQ(d.map_rect.w, 8);
    EXPECT_FLOAT_EQ(d.map_rect.h, 8);
    // Block means: left 10; right rows 0..3 -> 51.5, rows 4..7 -> 55.5.
    EXPECT_FLOAT_EQ(d.map[0], 10);
    EXPECT_FLOAT_EQ(d.map[1], 51.5f);
    EXPECT_FLOAT_EQ(d.map[2], 10);
    EXPECT_FLOAT_EQ(d.map[3], 55.5f);
    EXPECT_FLOAT_EQ(d.score, 55.5f) << backend;  // not ~1000 from a padding cell
    EXPECT_FALSE(d.anomalous);

    // An image as large as the canvas: every cell, the covered rectangle.
    Gray full{std::vector<uint8_t>(256, 7), 16, 16};
    r = (*det)->Detect(full.view());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->map_width, 4);
    EXPECT_EQ((*r)->map_height, 4);
    EXPECT_FLOAT_EQ((*r)->map_rect.w, 16);
    EXPECT_FLOAT_EQ((*r)->score, 1007);

    // A region of interest: the same 8x8 content, in input pixels of the ROI.
    Gray big{std::vector<uint8_t>(40 * 30, 0), 40, 30};
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) big.px[(y + 20) * 40 + x + 5] = img.px[y * 8 + x];
    r = (*det)->Detect(big.view(), RectF{5, 20, 8, 8});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->map_width, 2);
    EXPECT_FLOAT_EQ((*r)->map_rect.x, 5);
    EXPECT_FLOAT_EQ((*r)->map_rect.y, 20);
    EXPECT_FLOAT_EQ((*r)->score, 55.5f);

    // The first image again: the map is full size internally, compacted again.
    r = (*det)->Detect(img.view());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->map.size(), 4u);
    EXPECT_FLOAT_EQ((*r)->score, 55.5f);
  }
}

// Edge calibration: the kept 6x6 map of a 24x24 image on a 32x32 canvas, an
// S = 4 table (K = 2): rows 0/1 = distance 0 / >= 1 from the top, rows 3/2 =
// distance 0 / >= 1 from the bottom (columns likewise). A uniform image
// (block means 50) and tables that make each of the four sides distinct.
TEST(DetectorPixelScale, EdgeCalibrationFollowsTheKeptMap) {
  PreprocessConfig pre;
  SpecBuilder b = BlockMeans(32, &pre);
  // mean[r][c] = 10 * r + c; std 2 for the interior buckets (r, c in {1, 2}), else 1.
  std::vector<float> mean(16), sd(16);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      mean[r * 4 + c] = float(10 * r + c);
      sd[r * 4 + c] = (r == 1 || r == 2) && (c == 1 || c == 2) ? 2.0f : 1.0f;
    }
  b.Tensor("post.edge_mean", {4, 4}, mean).Tensor("post.edge_std", {4, 4}, sd);
  nlohmann::json post = {{"reduce", "max"}, {"edge_mean", "post.edge_mean"},
                         {"edge_std", "post.edge_std"}};
  const std::vector<uint8_t> bytes =
      WriteModel(b.Build("map", pre, post.dump(), R"({"offset":0,"scale":1,"threshold":100})"));
  auto det = Detector::Create(bytes.data(), bytes.size(), {"ref", 1});
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  Gray img{std::vector<uint8_t>(24 * 24, 50), 24, 24};
  auto r = (*det)->Detect(img.view());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Detection& d = **r;
  ASSERT_EQ(d.map_width, 6);
  ASSERT_EQ(d.map_height, 6);
  auto index = [](int i) { return i == 0 ? 0 : i == 5 ? 3 : i <= 2 ? 1 : 2; };
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) {
      const int e = index(y) * 4 + index(x);
      EXPECT_FLOAT_EQ(d.map[y * 6 + x], (50.0f - mean[e]) / sd[e]) << x << "," << y;
    }
  // Top-left corner: 50 - 0; interior (1,1): (50 - 11) / 2.
  EXPECT_FLOAT_EQ(d.map[0], 50.0f);
  EXPECT_FLOAT_EQ(d.map[7], 19.5f);
  EXPECT_FLOAT_EQ(d.score, 50.0f);
}

// A tiny image still gets one cell (the one under its centre), never an
// empty map.
TEST(DetectorPixelScale, TinyImageGetsOneCell) {
  const std::vector<uint8_t> bytes = WriteModel(PaddedSpec());
  auto det = Detector::Create(bytes.data(), bytes.size(), {"ref", 1});
  ASSERT_TRUE(det.ok());
  Gray one{std::vector<uint8_t>(1, 200), 1, 1};
  auto r = (*det)->Detect(one.view());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->map_width * (*r)->map_height, 1);
  EXPECT_FLOAT_EQ((*r)->score, 200);
}

}  // namespace
}  // namespace flawlens
