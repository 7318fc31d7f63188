// Runs the built `flawlens` binary (FLAWLENS_CLI) on a small generated model
// (tests/test_models.h) and generated images in a temp folder.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../test_models.h"
#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "flawlens/detector.h"

namespace flawlens::cli {
namespace {
namespace fs = std::filesystem;

struct RunResult {
  int code = -1;
  std::string out;
};

// Runs `flawlens ARGS`, stdout captured, stderr to `err_file` (if given).
RunResult RunCli(const std::string& args, const std::string& err_file = "/dev/null") {
  const std::string cmd = std::string(FLAWLENS_CLI) + " " + args + " 2>" + err_file;
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string ReadText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// Textured gray-ish image; `defect` paints a bright square at (dx, dy).
void WriteImage(const std::string& path, int w, int h, uint32_t seed, bool defect, int dx = 0,
                int dy = 0, int size = 0) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  uint32_t s = seed * 2654435761u + 1;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      s = s * 1664525u + 1013904223u;
      const int noise = static_cast<int>((s >> 24) % 17) - 8;
      for (int c = 0; c < 3; ++c) {
        int v = 110 + 20 * ((x / 4 + y / 4) % 2) + noise + c * 5;
        if (defect && x >= dx && x < dx + size && y >= dy && y < dy + size) v = 250 - c * 30;
        px[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
    }
  }
  ASSERT_TRUE(WriteFileBytes(path, EncodePng(px.data(), w, h, 3)).ok()) << path;
}

void WriteMask(const std::string& path, int w, int h, int dx, int dy, int size) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h, 0);
  for (int y = dy; y < dy + size; ++y) {
    for (int x = dx; x < dx + size; ++x) px[static_cast<size_t>(y) * w + x] = 255;
  }
  ASSERT_TRUE(WriteFileBytes(path, EncodePng(px.data(), w, h, 1)).ok()) << path;
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/flawlens_cli_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    model_ = dir_ + "/tiny.flawlens";
    model_bytes_ = WriteModel(testing::TinyUnetSpec());
    ASSERT_TRUE(WriteFileBytes(model_, model_bytes_).ok());
    // Dataset: val/good x4, val/scratch x3 (+ masks), val/dent x2 (no masks).
    data_ = dir_ + "/data";
    for (const char* d : {"/val/good", "/val/scratch", "/val/dent", "/val/masks/scratch",
                          "/train/good"}) {
      fs::create_directories(data_ + d);
    }
    for (int i = 0; i < 4; ++i) {
      WriteImage(data_ + "/val/good/g" + std::to_string(i) + ".png", 48, 40, 10 + i, false);
    }
    for (int i = 0; i < 2; ++i) {
      WriteImage(data_ + "/train/good/t" + std::to_string(i) + ".png", 48, 40, 30 + i, false);
    }
    for (int i = 0; i < 3; ++i) {
      const std::string name = "s" + std::to_string(i) + ".png";
      WriteImage(data_ + "/val/scratch/" + name, 48, 40, 20 + i, true, 8 + 6 * i, 10, 10);
      WriteMask(data_ + "/val/masks/scratch/" + name, 48, 40, 8 + 6 * i, 10, 10);
    }
    for (int i = 0; i < 2; ++i) {
      WriteImage(data_ + "/val/dent/d" + std::to_string(i) + ".PNG", 48, 40, 40 + i, true, 20, 20,
                 12);
    }
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string dir_, model_, data_;
  static std::vector<uint8_t> model_bytes_;
};
std::string CliTest::dir_, CliTest::model_, CliTest::data_;
std::vector<uint8_t> CliTest::model_bytes_;

TEST_F(CliTest, InfoPrintsNameAndJson) {
  RunResult r = RunCli("info " + model_);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tiny-unet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GFLOPs"), std::string::npos) << r.out;

  r = RunCli("info --json " + model_);
  ASSERT_EQ(r.code, 0);
  const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["name"], "tiny-unet");
  EXPECT_EQ(j["input"]["width"], 32);
  EXPECT_GT(j["parameters"].get<int64_t>(), 0);
  EXPECT_GT(j["gflops"].get<double>(), 0.0);
  EXPECT_FLOAT_EQ(j["threshold"].get<float>(), 2.0f);
  EXPECT_EQ(j["card"]["notes"], "test model using every op");

  EXPECT_NE(RunCli("info " + dir_ + "/missing.flawlens").code, 0);
}

TEST_F(CliTest, ScorePrintsOneRowPerImageMatchingTheDetector) {
  const std::string good = data_ + "/val/good";
  RunResult r = RunCli("score " + model_ + " " + good + " --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;  // header + 4
  EXPECT_EQ(lines[0], "path,score,verdict,error");
  auto det = Detector::Create(model_bytes_.data(), model_bytes_.size());
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  for (int i = 0; i < 4; ++i) {
    const std::string path = good + "/g" + std::to_string(i) + ".png";
    std::stringstream ss(lines[i + 1]);
    std::string p, score, verdict;
    std::getline(ss, p, ',');
    std::getline(ss, score, ',');
    std::getline(ss, verdict, ',');
    EXPECT_EQ(p, path);  // input order, sorted
    auto bytes = ReadFileBytes(path);
    ASSERT_TRUE(bytes.ok());
    auto d = (*det)->DetectEncoded(bytes->data(), bytes->size());
    ASSERT_TRUE(d.ok());
    EXPECT_NEAR(std::stod(score), (*d)->score, 1e-4 * (1 + std::fabs((*d)->score)));
    EXPECT_EQ(verdict, (*d)->anomalous ? "anomaly" : "ok");
  }
}

TEST_F(CliTest, CorruptImageGivesErrorRowAndExitCode3) {
  const std::string mixed = dir_ + "/mixed";
  fs::create_directories(mixed);
  fs::copy_file(data_ + "/val/good/g0.png", mixed + "/a.png", fs::copy_options::overwrite_existing);
  {
    std::ofstream f(mixed + "/b.png", std::ios::binary);
    f << "\x89PNG\r\n\x1a\n this is not a png";
  }
  fs::copy_file(data_ + "/val/good/g1.png", mixed + "/c.png", fs::copy_options::overwrite_existing);
  RunResult r = RunCli("score " + model_ + " " + mixed + " --format jsonl");
  EXPECT_EQ(r.code, 3);  // documented: some files not scored
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  std::vector<std::string> verdicts;
  for (const std::string& line : lines) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    verdicts.push_back(j["verdict"].get<std::string>());
    if (verdicts.back() == "error") {
      EXPECT_EQ(j["path"], mixed + "/b.png");
      EXPECT_FALSE(j["error"].get<std::string>().empty());
    } else {
      EXPECT_TRUE(j["score"].is_number());
    }
  }
  EXPECT_NE(verdicts[0], "error");
  EXPECT_EQ(verdicts[1], "error");
  EXPECT_NE(verdicts[2], "error");
  // A missing file is an error row too (CSV).
  r = RunCli("score " + model_ + " " + mixed + "/a.png " + dir_ + "/nope.png");
  EXPECT_EQ(r.code, 3);
  const std::vector<std::string> csv = Lines(r.out);
  ASSERT_EQ(csv.size(), 3u) << r.out;
  EXPECT_NE(csv[2].find(",,error,"), std::string::npos) << csv[2];
}

TEST_F(CliTest, ScoreWritesHeatmapsOfImageSize) {
  const std::string out = dir_ + "/heat";
  RunResult r = RunCli("score " + model_ + " " + data_ + "/val/scratch --heatmaps " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  for (int i = 0; i < 3; ++i) {
    auto bytes = ReadFileBytes(out + "/s" + std::to_string(i) + ".png");
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    auto img = DecodeImage(bytes->data(), bytes->size());
    ASSERT_TRUE(img.ok());
    EXPECT_EQ(img->width, 48);
    EXPECT_EQ(img->height, 40);
  }
}

TEST_F(CliTest, EvalWritesJsonAndSelfContainedReport) {
  const std::string json_path = dir_ + "/eval.json", report = dir_ + "/report";
  RunResult r = RunCli("eval " + model_ + " " + data_ + " --json " + json_path + " --report " +
                    report + " --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("image_AUROC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("scratch"), std::string::npos) << r.out;

  const nlohmann::json j = nlohmann::json::parse(ReadText(json_path), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["dataset"]["split"], "val");
  EXPECT_EQ(j["counts"]["good"], 4);
  EXPECT_EQ(j["counts"]["defective"], 5);
  EXPECT_EQ(j["counts"]["masks"], 3);
  for (const char* key : {"image_auroc", "pixel_auroc", "pro", "f1", "precision", "recall", "fpr",
                          "best_f1", "best_f1_threshold"}) {
    EXPECT_TRUE(j["metrics"].contains(key)) << key;
  }
  ASSERT_TRUE(j["per_type"].contains("scratch"));
  ASSERT_TRUE(j["per_type"].contains("dent"));
  EXPECT_TRUE(j["per_type"]["dent"]["pixel_auroc"].is_null());  // no masks for dent
  EXPECT_TRUE(j["per_type"]["scratch"]["pixel_auroc"].is_number());
  EXPECT_TRUE(j["per_type"]["scratch"]["pro"].is_number());
  const double auroc = j["metrics"]["image_auroc"].get<double>();
  EXPECT_GE(auroc, 0.0);
  EXPECT_LE(auroc, 1.0);
  // The image AUROC agrees with the per-image scores in the same file.
  ASSERT_EQ(j["images"].size(), 9u);
  double wins = 0, pairs = 0;
  for (const auto& a : j["images"]) {
    if (a["type"] == "good") continue;
    for (const auto& b : j["images"]) {
      if (b["type"] != "good") continue;
      const double sa = a["score"].get<double>(), sb = b["score"].get<double>();
      wins += sa > sb ? 1.0 : (sa == sb ? 0.5 : 0.0);
      pairs += 1;
    }
  }
  EXPECT_NEAR(auroc, wins / pairs, 1e-9);
  // Its 95 % bootstrap interval brackets it (4 good vs 5 defective: wide).
  ASSERT_TRUE(j["metrics"]["image_auroc_ci95"].is_array());
  const double lo = j["metrics"]["image_auroc_ci95"][0].get<double>();
  const double hi = j["metrics"]["image_auroc_ci95"][1].get<double>();
  EXPECT_LE(lo, auroc);
  EXPECT_GE(hi, auroc);
  EXPECT_GE(lo, 0.0);
  EXPECT_LE(hi, 1.0);
  EXPECT_TRUE(j["per_type"]["scratch"]["image_auroc_ci95"][0].is_number());
  EXPECT_NE(r.out.find("95% CI"), std::string::npos) << r.out;

  const std::string html = ReadText(report + "/report.html");
  ASSERT_FALSE(html.empty());
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  std::string lower = html;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  EXPECT_EQ(lower.find("http"), std::string::npos) << "external URL in the report";
  EXPECT_EQ(lower.find("<script"), std::string::npos);
  EXPECT_EQ(lower.find("<link"), std::string::npos);
  // Every src= is inline data.
  for (size_t p = lower.find("src=\""); p != std::string::npos; p = lower.find("src=\"", p + 1)) {
    EXPECT_EQ(lower.compare(p + 5, 5, "data:"), 0);
  }
}

TEST_F(CliTest, EvalSplitsAndErrors) {
  // Train split: good only -> AUROC undefined (null), still exit 0.
  const std::string json_path = dir_ + "/train.json";
  RunResult r = RunCli("eval " + model_ + " " + data_ + " --split train --json " + json_path);
  EXPECT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(ReadText(json_path), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["counts"]["good"], 2);
  EXPECT_TRUE(j["metrics"]["image_auroc"].is_null());
  EXPECT_TRUE(j["metrics"]["image_auroc_ci95"][0].is_null());

  const std::string err = dir_ + "/err.txt";
  r = RunCli("eval " + model_ + " " + data_ + " --split nosuch", err);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(ReadText(err).find("nosuch"), std::string::npos);
  r = RunCli("eval " + model_ + " " + dir_ + "/does_not_exist", err);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(ReadText(err).find("does not exist"), std::string::npos);
}

TEST_F(CliTest, EvalGroupsFileDrawsListedImagesTogether) {
  // Without --groups every image is its own draw: the interval is wide.
  const std::string plain = dir_ + "/plain.json", grouped = dir_ + "/grouped.json";
  ASSERT_EQ(RunCli("eval " + model_ + " " + data_ + " --json " + plain).code, 0);
  const nlohmann::json p = nlohmann::json::parse(ReadText(plain), nullptr, false);
  ASSERT_FALSE(p.is_discarded());
  const double auroc = p["metrics"]["image_auroc"].get<double>();
  ASSERT_GT(auroc, 0.0);
  ASSERT_LT(auroc, 1.0);
  EXPECT_LT(p["metrics"]["image_auroc_ci95"][0].get<double>(),
            p["metrics"]["image_auroc_ci95"][1].get<double>());
  // All good images one part, all defective ones another (by relative path
  // and by unique file name, CRLF line ends, a comment): every resample is the
  // original set, so the interval is the point itself.
  const std::string groups = dir_ + "/groups.csv";
  {
    std::ofstream f(groups, std::ios::binary);
    f << "# image,group\r\n"
      << "good/g0.png,good part\r\ng1.png,good part\r\ngood/g2.png,good part\r\ng3.png,good part\r\n"
      << "\r\nscratch/s0.png,bad part\ns1.png,bad part\ns2.png,bad part\ndent/d0.PNG,bad part\n"
      << "d1.PNG,bad part\n";
  }
  RunResult r = RunCli("eval " + model_ + " " + data_ + " --groups " + groups + " --json " + grouped);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("one group in " + groups), std::string::npos) << r.out;
  const nlohmann::json g = nlohmann::json::parse(ReadText(grouped), nullptr, false);
  ASSERT_FALSE(g.is_discarded());
  EXPECT_EQ(g["metrics"]["image_auroc"].get<double>(), auroc);
  EXPECT_EQ(g["metrics"]["image_auroc_ci95"][0].get<double>(), auroc);
  EXPECT_EQ(g["metrics"]["image_auroc_ci95"][1].get<double>(), auroc);
  EXPECT_NE(g["image_auroc_ci95_note"].get<std::string>().find(groups), std::string::npos);

  // Bad files: a clear error naming the line, exit 1.
  const std::string err = dir_ + "/groups_err.txt";
  auto expect_error = [&](const std::string& text, const std::string& expected) {
    std::ofstream(groups, std::ios::binary | std::ios::trunc) << text;
    const RunResult e = RunCli("eval " + model_ + " " + data_ + " --groups " + groups, err);
    EXPECT_EQ(e.code, 1) << text;
    EXPECT_NE(ReadText(err).find(expected), std::string::npos) << text << "\n" << ReadText(err);
  };
  expect_error("g0.png,a\nnosuch.png,a\n", "line 2: 'nosuch.png' is not an image of split 'val'");
  expect_error("g0.png a\n", "line 1: expected \"image,group\"");
  expect_error("g0.png,\n", "line 1: expected \"image,group\"");
  expect_error("g0.png,a\ngood/g0.png,b\n", "line 2: 'good/g0.png' is listed twice");
  // A partial list is fine (unlisted images keep the capture-tag rule).
  std::ofstream(groups, std::ios::binary | std::ios::trunc) << "g0.png,a\n";
  EXPECT_EQ(RunCli("eval " + model_ + " " + data_ + " --groups " + groups).code, 0);
  // A file name that two folders share must be given with its folder.
  const std::string twin = dir_ + "/twin";
  fs::create_directories(twin + "/val/good");
  fs::create_directories(twin + "/val/crack");
  WriteImage(twin + "/val/good/a.png", 48, 40, 1, false);
  WriteImage(twin + "/val/crack/a.png", 48, 40, 2, true, 10, 10, 8);
  std::ofstream(groups, std::ios::binary | std::ios::trunc) << "a.png,x\n";
  r = RunCli("eval " + model_ + " " + twin + " --groups " + groups, err);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(ReadText(err).find("'a.png' names 2 images"), std::string::npos) << ReadText(err);
  std::ofstream(groups, std::ios::binary | std::ios::trunc) << "crack/a.png,x\ngood/a.png,y\n";
  EXPECT_EQ(RunCli("eval " + model_ + " " + twin + " --groups " + groups).code, 0);
  r = RunCli("eval " + model_ + " " + data_ + " --groups " + dir_ + "/missing.csv", err);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(ReadText(err).find("missing.csv"), std::string::npos);
}

TEST(Dataset, LayoutsAndErrors) {
  char tmpl[] = "/tmp/flawlens_ds_test_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  // MVTec style: test/ + ground_truth/<defect>/<stem>_mask.png
  fs::create_directories(root + "/mv/test/good");
  fs::create_directories(root + "/mv/test/crack");
  fs::create_directories(root + "/mv/ground_truth/crack");
  for (const char* f : {"/mv/test/good/000.png", "/mv/test/crack/001.JPG", "/mv/test/crack/000.png",
                        "/mv/ground_truth/crack/000_mask.png", "/mv/test/crack/notes.txt"}) {
    std::ofstream(root + f) << "x";
  }
  auto ds = LoadDataset(root + "/mv");
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->split, "test");
  ASSERT_EQ(ds->samples.size(), 3u);
  EXPECT_FALSE(ds->samples[0].defective);
  EXPECT_EQ(ds->samples[1].path, root + "/mv/test/crack/000.png");
  EXPECT_EQ(ds->samples[1].mask_path, root + "/mv/ground_truth/crack/000_mask.png");
  EXPECT_EQ(ds->samples[2].mask_path, "");
  EXPECT_EQ(ds->defect_types, std::vector<std::string>{"crack"});
  // Flat folder.
  auto flat = LoadDataset(root + "/mv/test/crack");
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(flat->split, "flat");
  EXPECT_EQ(flat->num_good(), 2);
  // Errors.
  fs::create_directories(root + "/empty");
  EXPECT_FALSE(LoadDataset(root + "/empty").ok());
  EXPECT_FALSE(LoadDataset(root + "/missing").ok());
  EXPECT_FALSE(LoadDataset(root + "/mv", "val").ok());
  fs::create_directories(root + "/hollow/val/good");
  auto hollow = LoadDataset(root + "/hollow");
  ASSERT_FALSE(hollow.ok());
  EXPECT_NE(hollow.status().message().find("no images"), std::string::npos);
  std::error_code ec;
  fs::remove_all(root, ec);
}

}  // namespace
}  // namespace flawlens::cli
