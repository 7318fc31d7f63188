// The heatmap colour map (tools/cli/colormap.h): the page's copy in
// web/js/colormap.mjs is the same table, the table has the shape the page
// relies on, and the CLI's colouring and overlay follow the page's rules.
#include "cli/colormap.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace flawlens::cli {
namespace {

// The concatenated '...' literals of `const kLutHex = ... ;` in colormap.mjs.
std::string PageLutHex(std::string* error) {
  const std::string path = std::string(FLAWLENS_SOURCE_DIR) + "/web/js/colormap.mjs";
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read " + path;
    return "";
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string js = ss.str();
  const std::string key = "const kLutHex =";
  const size_t start = js.find(key);
  if (start == std::string::npos) {
    *error = "no '" + key + "' in " + path;
    return "";
  }
  const size_t end = js.find(';', start);
  std::string hex;
  bool in_literal = false;
  for (size_t i = start + key.size(); i < end && i < js.size(); ++i) {
    if (js[i] == '\'') {
      in_literal = !in_literal;
    } else if (in_literal) {
      hex += js[i];
    }
  }
  return hex;
}

// The table as colormap.mjs spells it, 8 entries per line.
std::string AsJsLiteral(const std::string& hex) {
  std::string s = "const kLutHex =\n";
  for (size_t i = 0; i < hex.size(); i += 64) {
    s += "  '" + hex.substr(i, 64) + (i + 64 < hex.size() ? "' +\n" : "';\n");
  }
  return s;
}

TEST(Colormap, PageHasTheSameTable) {
  std::string error;
  const std::string page = PageLutHex(&error);
  ASSERT_TRUE(error.empty()) << error;
  const std::string cli = HeatmapLutHex();
  ASSERT_EQ(cli.size(), static_cast<size_t>(kHeatmapLutSize) * 8);
  EXPECT_EQ(page, cli) << "web/js/colormap.mjs and tools/cli/colormap.cc draw different "
                          "colours; the table from colormap.cc is:\n"
                       << AsJsLiteral(cli);
}

TEST(Colormap, HexMatchesTable) {
  const uint8_t* lut = HeatmapLut();
  const std::string hex = HeatmapLutHex();
  for (int i = 0; i < kHeatmapLutSize * 4; ++i) {
    ASSERT_EQ(std::stoi(hex.substr(2 * i, 2), nullptr, 16), lut[i]) << "byte " << i;
  }
}

double Luminance(const uint8_t* c) { return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; }

TEST(Colormap, DarkClearLowBrightOpaqueHigh) {
  const uint8_t* lut = HeatmapLut();
  // Low end near black and fully transparent; high end pale yellow at 80 %.
  EXPECT_LT(lut[0] + lut[1] + lut[2], 30);
  EXPECT_EQ(lut[3], 0);
  const uint8_t* hi = lut + 4 * 255;
  EXPECT_GT(hi[0], 240);
  EXPECT_GT(hi[1], 240);
  EXPECT_GT(hi[0], hi[2]);
  EXPECT_EQ(hi[3], 204);
  // Brighter and more opaque with the value, never the reverse.
  for (int i = 1; i < kHeatmapLutSize; ++i) {
    EXPECT_GE(Luminance(lut + 4 * i), Luminance(lut + 4 * (i - 1))) << i;
    EXPECT_GE(lut[4 * i + 3], lut[4 * (i - 1) + 3]) << i;
  }
  // The middle is the reddish part of inferno: red leads.
  const uint8_t* mid = lut + 4 * 128;
  EXPECT_GT(mid[0], mid[1]);
  EXPECT_GT(mid[0], mid[2]);
}

TEST(Colormap, IndexLikeThePage) {
  // The same cases as lutIndex() in the page's module test.
  EXPECT_EQ(HeatmapIndex(0, 0, 1), 0);
  EXPECT_EQ(HeatmapIndex(1, 0, 1), 255);
  EXPECT_EQ(HeatmapIndex(0.5f, 0, 1), 128);
  EXPECT_EQ(HeatmapIndex(NAN, 0, 1), 0);
  EXPECT_EQ(HeatmapIndex(-5, 0, 1), 0);
  EXPECT_EQ(HeatmapIndex(9, 0, 1), 255);
  EXPECT_EQ(HeatmapIndex(3, 2, 2), 255);
  EXPECT_EQ(HeatmapIndex(1, 2, 2), 0);
  EXPECT_EQ(HeatmapIndex(2.5f, 1, 3), 191);  // 0.75 * 255 + 0.5 = 191.75
}

TEST(Colormap, ColorizeMap) {
  const float map[6] = {1.0f, 3.0f, 2.0f, -7.0f, NAN, INFINITY};
  uint8_t rgba[24];
  ColorizeMap(map, 3, 2, 1.0f, 3.0f, rgba);
  const uint8_t* lut = HeatmapLut();
  auto expect_idx = [&](int px, int idx) {
    for (int c = 0; c < 4; ++c) EXPECT_EQ(rgba[4 * px + c], lut[4 * idx + c]) << px;
  };
  expect_idx(0, 0);
  expect_idx(1, 255);
  expect_idx(2, 128);  // 0.5 * 255 + 0.5 = 128
  expect_idx(3, 0);    // clamped
  for (int px : {4, 5})
    for (int c = 0; c < 4; ++c) EXPECT_EQ(rgba[4 * px + c], 0);  // non-finite: transparent
  // Degenerate range: threshold at hi.
  ColorizeMap(map, 3, 1, 2.0f, 2.0f, rgba);
  expect_idx(0, 0);
  expect_idx(1, 255);
  expect_idx(2, 255);
}

// Out = image + opacity * alpha / 255 * (colour - image), per channel.
double Blend(double image, const uint8_t* entry, int c, double opacity) {
  return image + opacity * entry[3] / 255.0 * (entry[c] - image);
}

TEST(Colormap, OverlayHeatmap) {
  const int w = 4, h = 2;
  std::vector<uint8_t> gray(w * h);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(30 * i);
  const ImageView img{gray.data(), w, h, PixelFormat::kGray8, 0};
  const float map[2] = {0.0f, 1.0f};  // 2x1 map over the whole image
  const RectF rect{0, 0, 4, 2};
  Image out;
  // Opacity 0: the image (gray replicated).
  ASSERT_TRUE(OverlayHeatmap(img, map, 2, 1, rect, 0.0f, 1.0f, 0.0f, &out).ok());
  ASSERT_EQ(out.format, PixelFormat::kRGB8);
  ASSERT_EQ(out.pixels.size(), 4u * 2 * 3);
  for (int p = 0; p < 8; ++p)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(out.pixels[3 * p + c], gray[p]);
  // Opacity 1: bilinear map values 0, .25, .75, 1 at pixel centres, each
  // blended with its entry's alpha (index 0 is clear: the image shows).
  ASSERT_TRUE(OverlayHeatmap(img, map, 2, 1, rect, 0.0f, 1.0f, 1.0f, &out).ok());
  const int idx[4] = {0, 64, 191, 255};
  const uint8_t* lut = HeatmapLut();
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(out.pixels[(y * 4 + x) * 3 + c], Blend(gray[y * 4 + x], lut + 4 * idx[x], c, 1.0),
                    0.51)
            << x << "," << y;
  EXPECT_EQ(out.pixels[0], gray[0]);
  // Map over the right half only: left half untouched; blended on the right.
  std::vector<uint8_t> rgba(4 * 4);
  for (int x = 0; x < 4; ++x) {
    rgba[4 * x] = 200;
    rgba[4 * x + 1] = 100;
    rgba[4 * x + 2] = 0;
    rgba[4 * x + 3] = 7;
  }
  const ImageView row{rgba.data(), 4, 1, PixelFormat::kRGBA8, 0};
  const float one = 5.0f;
  ASSERT_TRUE(OverlayHeatmap(row, &one, 1, 1, {2, 0, 2, 1}, 0.0f, 1.0f, 0.5f, &out).ok());
  for (int x = 0; x < 2; ++x) {
    EXPECT_EQ(out.pixels[3 * x], 200);
    EXPECT_EQ(out.pixels[3 * x + 1], 100);
    EXPECT_EQ(out.pixels[3 * x + 2], 0);
  }
  for (int x = 2; x < 4; ++x) {
    EXPECT_NEAR(out.pixels[3 * x], Blend(200, lut + 4 * 255, 0, 0.5), 0.51);
    EXPECT_NEAR(out.pixels[3 * x + 1], Blend(100, lut + 4 * 255, 1, 0.5), 0.51);
    EXPECT_NEAR(out.pixels[3 * x + 2], Blend(0, lut + 4 * 255, 2, 0.5), 0.51);
  }
  // Bad arguments.
  EXPECT_FALSE(OverlayHeatmap(img, nullptr, 2, 1, rect, 0, 1, 1, &out).ok());
  EXPECT_FALSE(OverlayHeatmap(img, map, 0, 1, rect, 0, 1, 1, &out).ok());
  EXPECT_FALSE(OverlayHeatmap(img, map, 2, 1, {0, 0, 0, 2}, 0, 1, 1, &out).ok());
  EXPECT_FALSE(OverlayHeatmap(img, map, 2, 1, {NAN, 0, 4, 2}, 0, 1, 1, &out).ok());
  EXPECT_FALSE(OverlayHeatmap(img, map, 2, 1, rect, 0, 1, NAN, &out).ok());
  EXPECT_FALSE(OverlayHeatmap(img, map, 2, 1, rect, 0, 1, 1, static_cast<Image*>(nullptr)).ok());
  ImageView bad = img;
  bad.data = nullptr;
  EXPECT_FALSE(OverlayHeatmap(bad, map, 2, 1, rect, 0, 1, 1, &out).ok());
}

}  // namespace
}  // namespace flawlens::cli
