// `flawlens train --geometry` (tools/train/backbone_fit.cc): which geometry
// --input auto picks for photos of one shape and of many, and the forced ones.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "train/backbone_fit.h"

namespace flawlens::train {
namespace {

using Sizes = std::vector<std::pair<int, int>>;

// Photos of widely mixed shapes: aspect ratios 0.4 to 2.5, evenly spread.
Sizes MixedShapes() {
  Sizes s;
  for (int i = 0; i < 40; ++i) {
    const double a = 0.4 + 2.1 * i / 39.0;
    const int h = 250 + 3 * i;
    s.push_back({int(h * a), h});
  }
  return s;
}

TEST(ChooseGeometry, MixedShapesKeepTheirAspectUnderAutoInput) {
  const PhotoShapes shapes = MeasureShapes(MixedShapes());
  EXPECT_EQ(shapes.count, 40);
  EXPECT_GE(shapes.aspect_spread, kMixedShapesSpread);
  auto g = ChooseGeometry("auto", "auto", shapes, 256, 256);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->keep_aspect);
  EXPECT_EQ(g->pixel_scale, 0.0f);
  EXPECT_EQ(g->name, "keep-aspect");
  // An explicit input size or the backbone's own: stretch (as before).
  for (const char* input : {"", "256x256"}) {
    auto s = ChooseGeometry("auto", input, shapes, 256, 256);
    ASSERT_TRUE(s.ok());
    EXPECT_FALSE(s->keep_aspect) << input;
    EXPECT_EQ(s->name, "stretch");
  }
}

TEST(ChooseGeometry, OneShapeIsStretchedUnderAutoInput) {
  // MVTec-like: all 900x900; and all wide 2:1 (the input takes that aspect).
  for (const Sizes& sizes : {Sizes(20, {900, 900}), Sizes(20, {512, 256})}) {
    const PhotoShapes shapes = MeasureShapes(sizes);
    EXPECT_DOUBLE_EQ(shapes.aspect_spread, 1.0);
    auto g = ChooseGeometry("auto", "auto", shapes, 256, 256);
    ASSERT_TRUE(g.ok());
    EXPECT_FALSE(g->keep_aspect);
    EXPECT_EQ(g->pixel_scale, 0.0f);
    EXPECT_EQ(g->name, "stretch");
  }
  // Shapes that differ less than 3:1 (magnetic tile: 2.3) are stretched.
  Sizes moderate;
  for (int i = 0; i < 40; ++i) moderate.push_back({int(300 * (0.6 + 0.9 * i / 39.0)), 300});
  EXPECT_LT(MeasureShapes(moderate).aspect_spread, kMixedShapesSpread);
  EXPECT_FALSE(ChooseGeometry("auto", "auto", MeasureShapes(moderate), 256, 256)->keep_aspect);
  // A few odd photos among many alike (under a tenth) do not count.
  Sizes mostly(40, {400, 400});
  mostly[0] = {100, 400};
  mostly[1] = {800, 200};
  EXPECT_FALSE(ChooseGeometry("auto", "auto", MeasureShapes(mostly), 256, 256)->keep_aspect);
  // No readable photo: stretch.
  EXPECT_FALSE(ChooseGeometry("auto", "auto", MeasureShapes({}), 256, 256)->keep_aspect);
}

TEST(ChooseGeometry, ForcedGeometriesAndBadNames) {
  const PhotoShapes uniform = MeasureShapes(Sizes(10, {500, 500}));
  auto k = ChooseGeometry("keep-aspect", "", uniform, 256, 256);
  ASSERT_TRUE(k.ok());
  EXPECT_TRUE(k->keep_aspect);
  auto s = ChooseGeometry("stretch", "auto", MeasureShapes(MixedShapes()), 256, 256);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->keep_aspect);
  // Pixel scale: the 90th percentile long side (500) fits the short side.
  auto p = ChooseGeometry("pixel-scale", "", uniform, 256, 320);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->keep_aspect);
  EXPECT_FLOAT_EQ(p->pixel_scale, 256.0f / 500.0f);
  EXPECT_EQ(ChooseGeometry("pixel-scale", "", MeasureShapes({}), 256, 256).status().code(),
            ErrorCode::kInvalidArgument);
  auto bad = ChooseGeometry("letterbox", "auto", uniform, 256, 256);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("keep-aspect"), std::string::npos);
}

}  // namespace
}  // namespace flawlens::train
