// tools/synth: the procedural dataset the default model is trained on.
#include "synth/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "image/preprocess.h"

namespace flawlens::synth {
namespace {
namespace fs = std::filesystem;

std::vector<uint8_t> ReadBytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::set<std::string> PngNames(const fs::path& dir) {
  std::set<std::string> names;
  if (!fs::is_directory(dir)) return names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".png") names.insert(e.path().filename().string());
  return names;
}

int CountNonZero(const std::vector<uint8_t>& px) {
  return static_cast<int>(std::count_if(px.begin(), px.end(), [](uint8_t v) { return v != 0; }));
}

double MeanAbsDiff(const SynthImage& a, const SynthImage& b) {
  EXPECT_EQ(a.pixels.size(), b.pixels.size());
  double acc = 0;
  for (size_t i = 0; i < a.pixels.size() && i < b.pixels.size(); ++i)
    acc += std::abs(static_cast<int>(a.pixels[i]) - static_cast<int>(b.pixels[i]));
  return acc / std::max<size_t>(1, a.pixels.size());
}

class SynthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(FLAWLENS_BINARY_DIR) / "synth_test_tmp" /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  static SynthOptions Small(uint64_t seed) {
    SynthOptions o;
    o.train = 3;
    o.val_good = 2;
    o.val_defect = 2;
    o.width = 96;
    o.height = 80;
    o.seed = seed;
    return o;
  }
  fs::path root_;
};

TEST_F(SynthTest, WritesFolderLayoutWithMasks) {
  const SynthOptions o = Small(11);
  auto r = WriteSynthDataset((root_ / "ds").string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->train_good, 3);
  EXPECT_EQ(r->val_good, 2);
  EXPECT_EQ(r->val_defect, 2 * static_cast<int>(SynthDefects().size()));
  const fs::path ds = root_ / "ds";
  EXPECT_EQ(PngNames(ds / "train" / "good"), (std::set<std::string>{"000.png", "001.png", "002.png"}));
  EXPECT_EQ(PngNames(ds / "val" / "good"), (std::set<std::string>{"000.png", "001.png"}));
  EXPECT_FALSE(fs::exists(ds / "val" / "masks" / "good"));
  // Folders in val/: good, masks and one per defect, nothing else.
  std::set<std::string> val_dirs;
  for (const auto& e : fs::directory_iterator(ds / "val")) val_dirs.insert(e.path().filename().string());
  std::set<std::string> expected = {"good", "masks"};
  for (const auto& d : SynthDefects()) expected.insert(d);
  EXPECT_EQ(val_dirs, expected);

  for (const auto& d : SynthDefects()) {
    const auto images = PngNames(ds / "val" / d);
    EXPECT_EQ(images.size(), 2u) << d;
    EXPECT_EQ(PngNames(ds / "val" / "masks" / d), images) << d;
    for (const auto& name : images) {
      const auto img_bytes = ReadBytes(ds / "val" / d / name);
      const auto mask_bytes = ReadBytes(ds / "val" / "masks" / d / name);
      auto img = DecodeImage(img_bytes.data(), img_bytes.size());
      auto mask = DecodeImage(mask_bytes.data(), mask_bytes.size());
      ASSERT_TRUE(img.ok()) << img.status().ToString();
      ASSERT_TRUE(mask.ok()) << mask.status().ToString();
      EXPECT_EQ(img->width, 96);
      EXPECT_EQ(img->height, 80);
      EXPECT_EQ(img->format, PixelFormat::kGray8);  // metal is gray
      EXPECT_EQ(mask->width, 96);
      EXPECT_EQ(mask->height, 80);
      ASSERT_EQ(mask->format, PixelFormat::kGray8);
      // Binary mask, non-empty, and not the whole image.
      for (uint8_t v : mask->pixels) ASSERT_TRUE(v == 0 || v == 255);
      const int n = CountNonZero(mask->pixels);
      EXPECT_GT(n, 0) << d << "/" << name;
      EXPECT_LT(n, 96 * 80 / 2) << d << "/" << name;
    }
  }
  // Writing again into the same folder is refused without overwrite.
  auto again = WriteSynthDataset((root_ / "ds").string(), o);
  EXPECT_FALSE(again.ok());
  SynthOptions ow = o;
  ow.overwrite = true;
  ow.train = 1;
  auto replaced = WriteSynthDataset((root_ / "ds").string(), ow);
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  EXPECT_EQ(PngNames(ds / "train" / "good"), (std::set<std::string>{"000.png"}));
}

TEST_F(SynthTest, SameSeedSameBytesDifferentSeedDifferentImages) {
  const SynthOptions a = Small(5);
  SynthOptions b = a;
  b.seed = 6;
  ASSERT_TRUE(WriteSynthDataset((root_ / "a1").string(), a).ok());
  ASSERT_TRUE(WriteSynthDataset((root_ / "a2").string(), a).ok());
  auto rb = WriteSynthDataset((root_ / "b").string(), b);
  ASSERT_TRUE(rb.ok());
  int compared = 0, differ = 0;
  for (const auto& rel : rb->files) {
    const auto x = ReadBytes(root_ / "a1" / rel);
    ASSERT_FALSE(x.empty()) << rel;
    EXPECT_EQ(x, ReadBytes(root_ / "a2" / rel)) << rel;
    if (rel.find("masks") == std::string::npos) {
      ++compared;
      differ += x != ReadBytes(root_ / "b" / rel);
    }
  }
  EXPECT_EQ(compared, 3 + 2 + 2 * static_cast<int>(SynthDefects().size()));
  EXPECT_EQ(differ, compared);  // every image changes with the seed
  // And by content, not just by bytes.
  auto s5 = RenderSynthSample(a, SynthSplit::kTrain, "good", 0);
  auto s6 = RenderSynthSample(b, SynthSplit::kTrain, "good", 0);
  ASSERT_TRUE(s5.ok() && s6.ok());
  EXPECT_GT(MeanAbsDiff(s5->image, s6->image), 3.0);
}

TEST_F(SynthTest, GoodImagesVaryAndHaveEmptyMasks) {
  for (const auto& kind : SynthKinds()) {
    SynthOptions o = Small(3);
    o.kind = kind;
    std::vector<SynthImage> goods;
    for (int i = 0; i < 4; ++i) {
      for (SynthSplit split : {SynthSplit::kTrain, SynthSplit::kVal}) {
        auto s = RenderSynthSample(o, split, "good", i);
        ASSERT_TRUE(s.ok()) << s.status().ToString();
        EXPECT_EQ(s->defect, "good");
        EXPECT_EQ(CountNonZero(s->mask.pixels), 0) << kind;
        EXPECT_EQ(s->image.channels, kind == "metal" ? 1 : 3);
        goods.push_back(s->image);
      }
    }
    for (size_t i = 0; i < goods.size(); ++i)
      for (size_t j = i + 1; j < goods.size(); ++j)
        EXPECT_GT(MeanAbsDiff(goods[i], goods[j]), 2.0) << kind << " " << i << " vs " << j;
  }
}

// The mask covers what the defect changed: compared with the same sample
// rendered without the defect, the change is inside the mask.
TEST_F(SynthTest, DefectChangesPixelsInsideItsMask) {
  for (const auto& kind : SynthKinds()) {
    for (const auto& defect : SynthDefects()) {
      for (int i = 0; i < 3; ++i) {
        SynthOptions o = Small(21);
        o.kind = kind;
        o.width = o.height = 128;
        auto s = RenderSynthSample(o, SynthSplit::kVal, defect, i, /*with_clean=*/true);
        ASSERT_TRUE(s.ok()) << s.status().ToString();
        const SynthImage& img = s->image;
        const SynthImage& clean = s->clean;
        ASSERT_EQ(img.pixels.size(), clean.pixels.size());
        ASSERT_EQ(s->mask.pixels.size(), static_cast<size_t>(128 * 128));
        EXPECT_GE(s->severity, 0.0f);
        EXPECT_LE(s->severity, 1.0f);
        const int nc = img.channels;
        double in_sum = 0, max_in = 0, max_out = 0;
        int in_n = 0;
        for (int p = 0; p < 128 * 128; ++p) {
          double d = 0;
          for (int c = 0; c < nc; ++c)
            d = std::max<double>(d, std::abs(img.pixels[p * nc + c] - clean.pixels[p * nc + c]));
          if (s->mask.pixels[p]) {
            in_sum += d;
            max_in = std::max(max_in, d);
            ++in_n;
          } else {
            max_out = std::max(max_out, d);
          }
        }
        ASSERT_GT(in_n, 0) << kind << "/" << defect << " " << i;
        const double in_mean = in_sum / in_n;
        EXPECT_GT(in_mean, 1.0) << kind << "/" << defect << " " << i;
        // Soft edges leak a little outside the mask, never the full effect.
        EXPECT_LE(max_out, 0.6 * max_in + 3.0) << kind << "/" << defect << " " << i;
        EXPECT_GT(CountNonZero(s->mask.pixels), 0);
      }
    }
  }
}

TEST_F(SynthTest, RejectsBadOptions) {
  SynthOptions o = Small(1);
  o.kind = "plastic";
  EXPECT_FALSE(ValidateSynthOptions(o).ok());
  EXPECT_FALSE(WriteSynthDataset((root_ / "x").string(), o).ok());
  o = Small(1);
  o.width = 8;
  EXPECT_FALSE(ValidateSynthOptions(o).ok());
  o = Small(1);
  o.train = -1;
  EXPECT_FALSE(ValidateSynthOptions(o).ok());
  EXPECT_FALSE(RenderSynthSample(Small(1), SynthSplit::kVal, "dent", 0).ok());
  EXPECT_FALSE(RenderSynthSample(Small(1), SynthSplit::kVal, "good", -1).ok());
  EXPECT_TRUE(ValidateSynthOptions(Small(1)).ok());
}

TEST_F(SynthTest, CliWritesDataset) {
  const std::string cmd = std::string(FLAWLENS_CLI) + " synth " + (root_ / "cli").string() +
                          " --kind fabric --train 2 --val-good 1 --val-defect 1 --size 64x48 --seed 9"
                          " > " + (root_ / "log.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(PngNames(root_ / "cli" / "train" / "good").size(), 2u);
  EXPECT_EQ(PngNames(root_ / "cli" / "val" / "scratch").size(), 1u);
  EXPECT_EQ(PngNames(root_ / "cli" / "val" / "masks" / "scratch").size(), 1u);
  // Same bytes as the library call with the same options.
  SynthOptions o;
  o.kind = "fabric";
  o.width = 64;
  o.height = 48;
  o.seed = 9;
  auto s = RenderSynthSample(o, SynthSplit::kTrain, "good", 1);
  ASSERT_TRUE(s.ok());
  auto png = EncodeSynthPng(s->image);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(*png, ReadBytes(root_ / "cli" / "train" / "good" / "001.png"));
  // Bad arguments fail with a non-zero exit code.
  const std::string bad = std::string(FLAWLENS_CLI) + " synth " + (root_ / "bad").string() +
                          " --size 12by4 > /dev/null 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
}

}  // namespace
}  // namespace flawlens::synth
