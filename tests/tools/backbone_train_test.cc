// flawlens train --backbone (tools/train/backbone_fit.cc) on a generated
// dataset, with the converted centernet backbone (skipped when it has not
// been converted: tools/backbones/convert.sh build/backbones).
#include "train/backbone_fit.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/dataset.h"
#include "cli/metrics.h"
#include "flawlens/detector.h"
#include "synth/synth.h"

namespace flawlens::train {
namespace {
using namespace cli;  // NOLINT(google-build-using-namespace)
namespace fs = std::filesystem;

std::vector<uint8_t> ReadBytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// The converted centernet: $FLAWLENS_BACKBONES, or build/backbones of the
// source tree or of this build.
std::string FindCenternet() {
  for (const std::string& dir :
       {std::string(std::getenv("FLAWLENS_BACKBONES") ? std::getenv("FLAWLENS_BACKBONES") : ""),
        std::string(FLAWLENS_SOURCE_DIR) + "/build/backbones",
        std::string(FLAWLENS_BINARY_DIR) + "/backbones"}) {
    if (dir.empty()) continue;
    const fs::path p = fs::path(dir) / "centernet.safetensors";
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}

class BackboneTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(FLAWLENS_BINARY_DIR) / "backbone_train_test_tmp" /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(BackboneTrainTest, AMissingBackboneNameSaysWhereItLookedAndHowToConvert) {
  auto r = ResolveBackbone("no_such_backbone_xyz");
  ASSERT_FALSE(r.ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("no_such_backbone_xyz.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find("build/backbones"), std::string::npos) << m;
  EXPECT_NE(m.find("tools/backbones/convert.sh"), std::string::npos) << m;
  // A path that does not exist is reported as a file.
  auto f = ResolveBackbone((root_ / "missing.safetensors").string());
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("no such file"), std::string::npos);
  // A file that is not a backbone: a clear error, nothing written.
  const fs::path junk = root_ / "junk.safetensors";
  std::ofstream(junk) << "not a model";
  const fs::path data = root_ / "data";
  synth::SynthOptions so;
  so.train = 12;
  so.val_good = 0;
  so.val_defect = 0;
  so.width = so.height = 64;
  ASSERT_TRUE(synth::WriteSynthDataset(data.string(), so).ok());
  BackboneTrainOptions o;
  o.data = data.string();
  o.out = (root_ / "m.safetensors").string();
  o.backbone = junk.string();
  o.quiet = true;
  Status st = RunBackboneTraining(o);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("junk.safetensors"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(o.out));
}

TEST_F(BackboneTrainTest, TrainsOnAGeneratedDatasetAndSeparatesItsDefects) {
  const std::string centernet = FindCenternet();
  if (centernet.empty()) {
    GTEST_SKIP() << "centernet backbone not converted (tools/backbones/convert.sh build/backbones)";
  }
  const fs::path data = root_ / "data";
  synth::SynthOptions so;
  so.kind = "fabric";
  so.train = 40;
  so.val_good = 12;
  so.val_defect = 2;
  so.seed = 11;
  ASSERT_TRUE(synth::WriteSynthDataset(data.string(), so).ok());

  BackboneTrainOptions o;
  o.data = data.string();
  o.out = (root_ / "m.safetensors").string();
  o.backbone = centernet;
  o.quiet = true;
  o.threads = 1;
  ASSERT_TRUE(RunBackboneTraining(o).ok());
  const std::vector<uint8_t> bytes = ReadBytes(o.out);
  auto det = Detector::Create(bytes.data(), bytes.size());
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  auto card = nlohmann::json::parse((*det)->info().card_json);
  EXPECT_EQ(card["taught_by"], "flawlens train");
  // The threshold's meaning is in the file: the default target and the
  // out-of-group scores of all 40 images.
  EXPECT_FLOAT_EQ((*det)->info().false_alarm_rate, 0.05f);
  EXPECT_EQ((*det)->info().good_images, 40);
  EXPECT_EQ(card["fit"]["images"], 40);
  EXPECT_TRUE(card["backbone"].is_object());
  EXPECT_EQ(card["name"], "data");

  // Image AUROC on the generated val split.
  auto ds = LoadDataset(data.string(), "val");
  ASSERT_TRUE(ds.ok());
  std::vector<float> scores;
  std::vector<bool> labels;
  for (const Sample& s : ds->samples) {
    const std::vector<uint8_t> img = ReadBytes(s.path);
    auto r = (*det)->DetectEncoded(img.data(), img.size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    scores.push_back((*r)->score);
    labels.push_back(s.defective);
  }
  // 40 images of fabric: 0.80 measured; chance is 0.5.
  EXPECT_GT(Auroc(scores, labels), 0.7);

  // The same model is taught again from its own file (cut at the feature node).
  BackboneTrainOptions again = o;
  again.backbone = o.out;
  again.out = (root_ / "again.safetensors").string();
  ASSERT_TRUE(RunBackboneTraining(again).ok());
  EXPECT_TRUE(fs::is_regular_file(again.out));
}

TEST(ChooseInput, KeepsTheBackbonesInputOrMatchesThePhotosAspect) {
  using P = std::pair<int, int>;
  EXPECT_EQ(*ChooseInput("", 256, 256, 3.0), P(0, 0));
  EXPECT_EQ(*ChooseInput("auto", 256, 256, 1.1), P(0, 0));  // near square: the backbone's
  EXPECT_EQ(*ChooseInput("auto", 256, 256, 500.0 / 1247), P(256, 640));  // commutator photos
  EXPECT_EQ(*ChooseInput("auto", 256, 256, 2.0), P(512, 256));
  EXPECT_EQ(*ChooseInput("auto", 256, 256, 10.0), P(1024, 256));  // at most 4x
  EXPECT_EQ(*ChooseInput("320x96", 256, 256, 1.0), P(320, 96));
  for (const char* bad : {"320", "320x100", "0x64", "64x64x3", "big"}) {
    EXPECT_EQ(ChooseInput(bad, 256, 256, 1.0).status().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST_F(BackboneTrainTest, AutoInputFollowsWidePhotos) {
  const std::string centernet = FindCenternet();
  if (centernet.empty()) {
    GTEST_SKIP() << "centernet backbone not converted (tools/backbones/convert.sh build/backbones)";
  }
  const fs::path data = root_ / "wide";
  synth::SynthOptions so;
  so.train = 10;
  so.val_good = 0;
  so.val_defect = 0;
  so.width = 256;
  so.height = 128;
  ASSERT_TRUE(synth::WriteSynthDataset(data.string(), so).ok());
  BackboneTrainOptions o;
  o.data = data.string();
  o.out = (root_ / "wide.safetensors").string();
  o.backbone = centernet;
  o.quiet = true;
  o.threads = 1;
  o.input = "auto";
  ASSERT_TRUE(RunBackboneTraining(o).ok());
  const std::vector<uint8_t> bytes = ReadBytes(o.out);
  auto det = Detector::Create(bytes.data(), bytes.size());
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  EXPECT_EQ((*det)->info().input_width, 512);
  EXPECT_EQ((*det)->info().input_height, 256);
  EXPECT_EQ((*det)->info().map_width, 2 * (*det)->info().map_height);
}

TEST_F(BackboneTrainTest, TooFewImagesIsAClearErrorAndWritesNothing) {
  const std::string centernet = FindCenternet();
  if (centernet.empty()) {
    GTEST_SKIP() << "centernet backbone not converted (tools/backbones/convert.sh build/backbones)";
  }
  const fs::path data = root_ / "flat";
  fs::create_directories(data);
  synth::SynthOptions so;
  so.train = 4;
  so.val_good = 0;
  so.val_defect = 0;
  so.width = so.height = 64;
  ASSERT_TRUE(synth::WriteSynthDataset((root_ / "gen").string(), so).ok());
  for (const auto& e : fs::directory_iterator(root_ / "gen" / "train" / "good"))
    fs::copy_file(e.path(), data / e.path().filename());
  BackboneTrainOptions o;
  o.data = data.string();
  o.out = (root_ / "m.safetensors").string();
  o.backbone = centernet;
  o.quiet = true;
  Status st = RunBackboneTraining(o);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("too few images"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(o.out));
}

}  // namespace
}  // namespace flawlens::train
