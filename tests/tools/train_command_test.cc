// `flawlens train` option handling: the default trains on the centernet
// backbone, options of from-scratch training need --from-scratch (and are an
// error with --backbone), a missing default backbone says how to get it, and
// a flawlens built without LibTorch says so for --from-scratch. Torch-free:
// built in both FLAWLENS_TORCH builds (tools/CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flawlens/detector.h"
#include "synth/synth.h"

namespace {
namespace fs = std::filesystem;

struct RunResult {
  int code = -1;
  std::string err;
};

// Runs `flawlens ARGS` with stderr captured (stdout discarded); `prefix` goes
// before the command (environment, cd).
RunResult RunCli(const std::string& args, const fs::path& err_file,
                 const std::string& prefix = "") {
  const std::string cmd =
      prefix + std::string(FLAWLENS_CLI) + " " + args + " >/dev/null 2>" + err_file.string();
  RunResult r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_file);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  return r;
}

std::vector<uint8_t> ReadBytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// The folder that holds the converted centernet (as backbone_train_test
// finds it): $FLAWLENS_BACKBONES, or build/backbones of the source tree or of
// this build; "" when it has not been converted.
std::string FindBackbonesDir() {
  const char* env = std::getenv("FLAWLENS_BACKBONES");
  for (const std::string& dir : {std::string(env ? env : ""),
                                 std::string(FLAWLENS_SOURCE_DIR) + "/build/backbones",
                                 std::string(FLAWLENS_BINARY_DIR) + "/backbones"}) {
    if (!dir.empty() && fs::is_regular_file(fs::path(dir) / "centernet.safetensors")) return dir;
  }
  return "";
}

class TrainCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("flawlens_train_command_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "train/good");
    out_ = dir_ / "m.safetensors";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A folder dataset of `n` generated good 96x96 images at dir_/data.
  fs::path WriteGoodImages(int n, int seed) {
    const fs::path data = dir_ / "data";
    flawlens::synth::SynthOptions so;
    so.train = n;
    so.val_good = 0;
    so.val_defect = 0;
    so.width = so.height = 96;
    so.seed = seed;
    EXPECT_TRUE(flawlens::synth::WriteSynthDataset(data.string(), so).ok());
    return data;
  }

  // Runs `flawlens train DATA --out OUT --threads 1 --quiet EXTRA` on the
  // converted backbones in `backbones`.
  RunResult Train(const fs::path& data, const fs::path& out, const std::string& extra,
                  const std::string& backbones, const std::string& err_name) {
    return RunCli("train " + data.string() + " --out " + out.string() + " --threads 1 --quiet" +
                      extra,
                  dir_ / err_name, "FLAWLENS_BACKBONES=" + backbones + " ");
  }

  // The model file, loaded by the detector (which keeps no pointer into
  // the bytes); null after a failed expectation.
  std::unique_ptr<flawlens::Detector> LoadDetector(const fs::path& model) {
    const std::vector<uint8_t> bytes = ReadBytes(model);
    auto det = flawlens::Detector::Create(bytes.data(), bytes.size());
    EXPECT_TRUE(det.ok()) << model << ": " << det.status().ToString();
    return det.ok() ? std::move(*det) : nullptr;
  }

  fs::path dir_, out_;
};

TEST_F(TrainCommandTest, ScratchOnlyOptionsWithBackboneAreAnError) {
  const RunResult r = RunCli("train " + dir_.string() + " --out " + out_.string() +
                                 " --backbone some-backbone --minutes 3 --fit scale --no-flips"
                                 " --seed 4 --holdout 0.2",
                             dir_ / "err.txt");
  EXPECT_EQ(r.code, 1);
  // The offending options, in the order of --help; not --seed, which
  // --backbone takes. --holdout is from scratch only: on a backbone every
  // image is scored out of its group.
  EXPECT_NE(r.err.find("--minutes, --fit, --holdout, --no-flips: only for training from scratch, not "
                       "with --backbone"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(TrainCommandTest, ScratchOnlyOptionsWithoutFromScratchSayToAddIt) {
  const RunResult r = RunCli("train " + dir_.string() + " --out " + out_.string() +
                                 " --minutes 3 --seed 4 --lr 0.01 --no-flips",
                             dir_ / "err.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--minutes, --lr, --no-flips: only for training from scratch: add "
                       "--from-scratch"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("centernet"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(TrainCommandTest, BackboneAndFromScratchTogetherAreAnError) {
  const RunResult r = RunCli("train " + dir_.string() + " --out " + out_.string() +
                                 " --backbone centernet --from-scratch",
                             dir_ / "err.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--backbone and --from-scratch: choose one"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(TrainCommandTest, AMissingDefaultBackboneSaysHowToGetItAndAboutFromScratch) {
  // Nothing to find: an empty FLAWLENS_BACKBONES, and a current folder with no
  // build/backbones. The folder beside the binary is the one place left.
  const fs::path beside = fs::path(FLAWLENS_CLI).parent_path() / "backbones";
  if (fs::exists(beside / "centernet.safetensors")) {
    GTEST_SKIP() << "a converted backbone sits beside the CLI: " << beside;
  }
  const fs::path empty = dir_ / "no-backbones";
  fs::create_directories(empty);
  const RunResult r =
      RunCli("train " + dir_.string() + " --out " + out_.string(), dir_ / "err.txt",
             "cd " + empty.string() + " && FLAWLENS_BACKBONES=" + empty.string() + " ");
  EXPECT_EQ(r.code, 1);
  for (const char* want :
       {"pretrained centernet backbone by default", "no converted backbone found",
        "centernet.safetensors", "model/build_default.sh", "tools/backbones/convert.sh",
        "FLAWLENS_BACKBONES", "--from-scratch"}) {
    EXPECT_NE(r.err.find(want), std::string::npos) << want << " not in: " << r.err;
  }
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(TrainCommandTest, TheDefaultTrainsOnTheCenternetBackbone) {
  const std::string backbones = FindBackbonesDir();
  if (backbones.empty()) {
    GTEST_SKIP() << "centernet backbone not converted (tools/backbones/convert.sh build/backbones)";
  }
  const fs::path data = WriteGoodImages(24, 3);
  const RunResult r = Train(data, out_, "", backbones, "err.txt");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto det = LoadDetector(out_);
  ASSERT_TRUE(det);
  const nlohmann::json card = nlohmann::json::parse(det->info().card_json);
  EXPECT_EQ(card["taught_by"], "flawlens train");
  ASSERT_TRUE(card["backbone"].is_object()) << card.dump();
  EXPECT_EQ(card["backbone"]["name"], "centernet");
  EXPECT_EQ(card["fit"]["images"], 24);

  // The same model as an explicit --backbone centernet: same score on an image.
  const fs::path explicit_out = dir_ / "explicit.safetensors";
  const RunResult e = Train(data, explicit_out, " --backbone centernet", backbones, "err2.txt");
  ASSERT_EQ(e.code, 0) << e.err;
  const auto det2 = LoadDetector(explicit_out);
  ASSERT_TRUE(det2);
  const std::vector<uint8_t> img = ReadBytes(data / "train" / "good" / "000.png");
  auto a = det->DetectEncoded(img.data(), img.size());
  auto b = det2->DetectEncoded(img.data(), img.size());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->raw_score, (*b)->raw_score);
}

TEST_F(TrainCommandTest, FeatureOptionsReachTheFitAndItsCard) {
  const std::string backbones = FindBackbonesDir();
  if (backbones.empty()) {
    GTEST_SKIP() << "centernet backbone not converted (tools/backbones/convert.sh build/backbones)";
  }
  const fs::path data = WriteGoodImages(16, 4);
  const RunResult r = Train(data, out_, " --dims 16 --local-average 3 --covariance-region 4",
                            backbones, "err.txt");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto det = LoadDetector(out_);
  ASSERT_TRUE(det);
  const nlohmann::json card = nlohmann::json::parse(det->info().card_json);
  EXPECT_EQ(card["fit"]["dims"], 16);
  EXPECT_EQ(card["fit"]["pool"], 3);
  // A 32x32 map in 4x4 blocks: an 8x8 grid of covariances.
  EXPECT_EQ(card["fit"]["map"], nlohmann::json::array({32, 32}));
  EXPECT_EQ(card["fit"]["region"], nlohmann::json::array({8, 8}));
  const std::vector<uint8_t> img = ReadBytes(data / "train" / "good" / "000.png");
  auto a = det->DetectEncoded(img.data(), img.size());
  ASSERT_TRUE(a.ok()) << a.status().ToString();

  // A window the fit cannot use is refused by name, and no model is left.
  const fs::path bad = dir_ / "bad.safetensors";
  const RunResult e = Train(data, bad, " --local-average 4", backbones, "err2.txt");
  EXPECT_EQ(e.code, 1);
  EXPECT_NE(e.err.find("local average window must be odd"), std::string::npos) << e.err;
  EXPECT_FALSE(fs::exists(bad));
}

TEST_F(TrainCommandTest, FeatureOptionsFromScratchAreAnError) {
  const RunResult r = RunCli("train " + dir_.string() + " --out " + out_.string() +
                                 " --from-scratch --dims 64",
                             dir_ / "err.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--dims, --local-average and --covariance-region"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out_));
}

#if !FLAWLENS_TORCH
TEST_F(TrainCommandTest, FromScratchWithoutLibTorchSaysHowToTrain) {
  const RunResult r = RunCli(
      "train " + dir_.string() + " --out " + out_.string() + " --from-scratch", dir_ / "err.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("built without LibTorch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--backbone NAME|FILE"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out_));
}
#endif

}  // namespace
