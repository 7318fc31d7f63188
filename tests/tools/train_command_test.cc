// `flawlens train` option handling that needs no training: options of
// from-scratch training given with --backbone are an error, and a flawlens
// built without LibTorch says so for training from scratch. Torch-free: built
// in both FLAWLENS_TORCH builds (tools/CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {
namespace fs = std::filesystem;

struct RunResult {
  int code = -1;
  std::string err;
};

// Runs `flawlens ARGS` with stderr captured (stdout discarded).
RunResult RunCli(const std::string& args, const fs::path& err_file) {
  const std::string cmd =
      std::string(FLAWLENS_CLI) + " " + args + " >/dev/null 2>" + err_file.string();
  RunResult r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_file);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  return r;
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
  fs::path dir_, out_;
};

TEST_F(TrainCommandTest, ScratchOnlyOptionsWithBackboneAreAnError) {
  const RunResult r = RunCli("train " + dir_.string() + " --out " + out_.string() +
                                 " --backbone some-backbone --minutes 3 --fit scale --no-flips"
                                 " --seed 4 --holdout 0.2",
                             dir_ / "err.txt");
  EXPECT_EQ(r.code, 1);
  // The offending options, in the order of --help; not --seed or --holdout,
  // which --backbone takes.
  EXPECT_NE(r.err.find("--minutes, --fit, --no-flips: only for training from scratch, not with "
                       "--backbone"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out_));
}

#if !FLAWLENS_TORCH
TEST_F(TrainCommandTest, FromScratchWithoutLibTorchSaysHowToTrain) {
  const RunResult r =
      RunCli("train " + dir_.string() + " --out " + out_.string(), dir_ / "err.txt");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("built without LibTorch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--backbone NAME|FILE"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out_));
}
#endif

}  // namespace
