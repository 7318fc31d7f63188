// flawlens train: export matches LibTorch on the core engine; a tiny end-to-end
// training run writes a model the Detector loads and runs; clear errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "cli/dataset.h"
#include "flawlens/detector.h"
#include "model/model.h"
#include "train/net.h"
#include "train/synth_anomaly.h"
#include "train/thread_tuner.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace flawlens;

namespace {

// Max |engine - libtorch| over the map, and max |libtorch|.
void CompareEngine(train::FlawNet& net, int h, int w, const std::string& backend, int trials,
                   float* max_diff, float* max_ref) {
  ModelSpec spec;
  train::ExportNetwork(net, h, w, &spec);
  PreprocessConfig pre;
  pre.resize_w = w;
  pre.resize_h = h;
  pre.channels = net->config.in_channels;
  spec.preprocess_json = PreprocessToJson(pre);
  std::vector<uint8_t> bytes = WriteModel(spec);
  DetectorOptions dopt;
  dopt.backend = backend;
  auto det = Detector::Create(bytes.data(), bytes.size(), dopt);
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  ASSERT_EQ((*det)->network_output_count(), size_t(h / 4) * (w / 4));
  *max_diff = 0;
  *max_ref = 0;
  for (int t = 0; t < trials; ++t) {
    torch::Tensor x = torch::randn({1, pre.channels, h, w});
    torch::Tensor ref;
    {
      torch::NoGradGuard ng;
      ref = net->forward_map(x).contiguous();
    }
    torch::Tensor hwc = x[0].permute({1, 2, 0}).contiguous();
    std::vector<float> out((*det)->network_output_count());
    Status st = (*det)->RunNetwork(hwc.data_ptr<float>(), hwc.numel(), out.data(), out.size());
    ASSERT_TRUE(st.ok()) << st.ToString();
    for (int64_t i = 0; i < ref.numel(); ++i) {
      *max_diff = std::max(*max_diff, std::fabs(out[i] - ref.data_ptr<float>()[i]));
      *max_ref = std::max(*max_ref, std::fabs(ref.data_ptr<float>()[i]));
    }
  }
}

// The engine's map (on each backend) matches LibTorch's forward_map on random
// inputs; float32 accumulation order differs (XNNPACK / SIMD vs MKL-DNN):
// relative 1e-4.
void ExpectEngineMatches(train::FlawNet& net, int h, int w, int trials,
                         std::initializer_list<const char*> backends = {"ref", "auto"}) {
  for (const char* backend : backends) {
    float diff = 0, ref = 0;
    CompareEngine(net, h, w, backend, trials, &diff, &ref);
    EXPECT_LE(diff, 1e-4f * std::max(1.0f, ref)) << backend << ": max |map| " << ref;
    EXPECT_GT(ref, 0.0f);
  }
}

// A few optimiser steps so BatchNorm statistics and weights are non-trivial.
void TrainFewSteps(train::FlawNet& net, int h, int w) {
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  net->train();
  for (int s = 0; s < 3; ++s) {
    torch::Tensor x = torch::randn({2, net->config.in_channels, h, w}) * 2 + 0.5;
    torch::Tensor y = (torch::rand({2, 1, h / 4, w / 4}) > 0.8).to(torch::kFloat32);
    torch::Tensor loss = torch::binary_cross_entropy_with_logits(net->forward(x).seg, y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  net->eval();
}

TEST(TrainExport, EngineMatchesLibTorchWithDensityBranch) {
  torch::manual_seed(3);
  train::NetConfig cfg;
  cfg.in_channels = 3;
  cfg.width = 8;
  cfg.map_blur_sigma = 1.0f;
  train::FlawNet net(cfg);
  TrainFewSteps(net, 48, 64);
  {
    torch::NoGradGuard ng;
    int f = net->feature_channels();
    torch::Tensor a = torch::randn({f, f}) * 0.3;
    net->dens_w.copy_(a + torch::eye(f));
    net->dens_b.copy_(torch::randn({f}) * 0.1);
    net->combine.copy_(torch::tensor({-1.5f, 0.7f, 30.0f, 12.0f, 0.0f, 1.0f}));
    net->density_fitted = true;
  }
  ExpectEngineMatches(net, 48, 64, 3);
}

TEST(TrainExport, EngineMatchesLibTorchWithNearestNeighbourBank) {
  torch::manual_seed(7);
  train::NetConfig cfg;
  cfg.in_channels = 1;
  cfg.width = 6;
  cfg.bank = 16;
  cfg.map_blur_sigma = 0.7f;
  train::FlawNet net(cfg);
  TrainFewSteps(net, 32, 56);
  {
    torch::NoGradGuard ng;
    int f = net->feature_channels();
    net->dens_w.copy_(torch::eye(f) * 0.5);
    net->dens_b.copy_(torch::randn({f}) * 0.1);
    net->bank.copy_(torch::randn({16, f}));
    net->combine.copy_(torch::tensor({0.5f, 2.0f, 10.0f, 4.0f, 0.0f, 1.0f}));
    net->density_fitted = true;
  }
  ExpectEngineMatches(net, 32, 56, 2, {"ref"});
}

TEST(TrainExport, EngineMatchesLibTorchWithFineDensity) {
  torch::manual_seed(11);
  train::NetConfig cfg;
  cfg.in_channels = 1;
  cfg.width = 6;
  cfg.fine_density = true;
  cfg.map_blur_sigma = 1.0f;
  train::FlawNet net(cfg);
  TrainFewSteps(net, 40, 56);
  {
    torch::NoGradGuard ng;
    int f = net->feature_channels();
    net->dens_w.copy_(torch::randn({f, f}) * 0.2 + torch::eye(f));
    net->dens_b.copy_(torch::randn({f}) * 0.1);
    net->fine_w.copy_(torch::randn({6, 6}) * 0.3 + torch::eye(6));
    net->fine_b.copy_(torch::randn({6}) * 0.1);
    net->combine.copy_(torch::tensor({0.5f, 2.0f, 10.0f, 4.0f, 7.0f, 3.0f}));
    net->density_fitted = true;
    net->fine_fitted = true;
  }
  // The fine branch is in the exported graph (maxpool of its 1/2-resolution map).
  ModelSpec spec;
  train::ExportNetwork(net, 40, 56, &spec);
  EXPECT_NE(spec.graph_json.find("fine_white"), std::string::npos);
  EXPECT_NE(spec.graph_json.find("maxpool2d"), std::string::npos);
  ExpectEngineMatches(net, 40, 56, 2);
  // Switching the branch off changes the map: it contributes.
  torch::Tensor x = torch::randn({1, 1, 40, 56});
  torch::NoGradGuard ng;
  torch::Tensor with = net->forward_map(x);
  net->fine_fitted = false;
  torch::Tensor without = net->forward_map(x);
  EXPECT_GT((with - without).abs().max().item<float>(), 1e-3f);
}

TEST(TrainExport, EngineMatchesLibTorchWithImageLevelTerm) {
  torch::manual_seed(12);
  train::NetConfig cfg;
  cfg.in_channels = 1;
  cfg.width = 6;
  cfg.global_weight = 1.5f;
  cfg.map_blur_sigma = 1.0f;
  train::FlawNet net(cfg);
  TrainFewSteps(net, 40, 56);
  {
    torch::NoGradGuard ng;
    int f = net->feature_channels();
    int64_t g = net->global_channels();
    ASSERT_EQ(g, 9 * 6);
    net->dens_w.copy_(torch::randn({f, f}) * 0.2 + torch::eye(f));
    net->dens_b.copy_(torch::randn({f}) * 0.1);
    net->glob_w.copy_(torch::randn({g, g}) * 0.2 + torch::eye(g));
    net->glob_b.copy_(torch::randn({g}) * 0.1);
    net->glob_stats.copy_(torch::tensor({3.0f, 2.0f}));
    net->combine.copy_(torch::tensor({0.5f, 2.0f, 10.0f, 4.0f, 0.0f, 1.0f}));
    net->density_fitted = true;
    net->global_fitted = true;
  }
  // The term is in the exported graph: global average pools, broadcast by a
  // 1x1 -> 10x14 upsample, added to the smoothed map.
  ModelSpec spec;
  train::ExportNetwork(net, 40, 56, &spec);
  EXPECT_NE(spec.graph_json.find("global_avgpool"), std::string::npos);
  EXPECT_NE(spec.graph_json.find("glob_map"), std::string::npos);
  ExpectEngineMatches(net, 40, 56, 2);
  // The term is one value per image, added to every cell, and differs between images.
  torch::NoGradGuard ng;
  torch::Tensor x = torch::randn({2, 1, 40, 56});
  x[1] = x[1] * 3 + 2;  // a different image: other feature means
  torch::Tensor with = net->forward_map(x);
  net->global_fitted = false;
  torch::Tensor without = net->forward_map(x);
  torch::Tensor d = with - without;
  for (int i = 0; i < 2; ++i) {
    EXPECT_LT((d[i] - d[i].mean()).abs().max().item<float>(), 1e-4f);
  }
  EXPECT_GT((d[0].mean() - d[1].mean()).abs().item<float>(), 1e-3f);
}

TEST(TrainExport, EngineMatchesLibTorchSegOnlyGray) {
  torch::manual_seed(4);
  train::NetConfig cfg;
  cfg.in_channels = 1;
  cfg.width = 4;
  cfg.density = false;
  cfg.map_blur_sigma = 0.0f;
  train::FlawNet net(cfg);
  TrainFewSteps(net, 40, 32);
  ExpectEngineMatches(net, 40, 32, 2, {"ref"});
}

// Tiny generated dataset: textured gray images, defects = dark blobs.
void WriteGray(const fs::path& p, const std::vector<uint8_t>& px, int w, int h) {
  std::vector<uint8_t> png = cli::EncodePng(px.data(), w, h, 1);
  ASSERT_FALSE(png.empty());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size());
}

std::vector<uint8_t> Texture(int w, int h, std::mt19937* rng) {
  std::vector<uint8_t> px(size_t(w) * h);
  std::uniform_real_distribution<float> u(0, 1);
  float ph = u(*rng) * 6.28f;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      px[size_t(y) * w + x] = uint8_t(std::clamp(
          120.0f + 40.0f * std::sin(0.4f * x + ph) * std::cos(0.3f * y) + 20.0f * u(*rng), 0.0f, 255.0f));
  return px;
}

fs::path MakeTinyDataset() {
  fs::path root = fs::temp_directory_path() / ("flawlens_train_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  for (const char* d : {"train/good", "val/good", "val/spot", "val/masks/spot"})
    fs::create_directories(root / d);
  std::mt19937 rng(5);
  const int w = 64, h = 48;
  for (int i = 0; i < 12; ++i)
    WriteGray(root / "train/good" / ("g" + std::to_string(i) + ".png"), Texture(w, h, &rng), w, h);
  std::ofstream(root / "train/good/broken.png") << "not an image";
  for (int i = 0; i < 3; ++i)
    WriteGray(root / "val/good" / ("v" + std::to_string(i) + ".png"), Texture(w, h, &rng), w, h);
  for (int i = 0; i < 3; ++i) {
    std::vector<uint8_t> px = Texture(w, h, &rng), mask(size_t(w) * h, 0);
    int cx = 15 + 12 * i, cy = 20;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < 36) {
          px[size_t(y) * w + x] = 10;
          mask[size_t(y) * w + x] = 255;
        }
    std::string n = "d" + std::to_string(i) + ".png";
    WriteGray(root / "val/spot" / n, px, w, h);
    WriteGray(root / "val/masks/spot" / n, mask, w, h);
  }
  return root;
}

// A few seconds of training on a tiny dataset at `root`, writing root/model.flawlens.
train::TrainOptions TinyTrainOptions(const fs::path& root) {
  train::TrainOptions opt;
  opt.data = root.string();
  opt.out = (root / "model.flawlens").string();
  opt.minutes = 0.1;
  opt.size = 48;
  opt.crop = 32;
  opt.batch = 4;
  opt.width = 4;
  opt.val_every = 0;
  opt.quiet = true;
  return opt;
}

TEST(TrainEndToEnd, TinyDatasetTrainsExportsAndDetects) {
 // Default settings, then with the image-level term (--global-weight 1).
 for (float global_weight : {0.0f, 1.0f}) {
  SCOPED_TRACE("global_weight " + std::to_string(global_weight));
  fs::path root = MakeTinyDataset();
  train::TrainOptions opt = TinyTrainOptions(root);
  opt.global_weight = global_weight;
  // Images of one size: --fit auto stretches them like the default.
  opt.fit = global_weight > 0 ? "auto" : "stretch";
  Status st = train::RunTraining(opt);  // includes the engine-vs-LibTorch self-check
  ASSERT_TRUE(st.ok()) << st.ToString();

  auto loaded = cli::LoadModelFile(opt.out);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Model& m = *loaded->model;
  EXPECT_EQ(m.preprocess.channels, 1);
  EXPECT_TRUE(std::isfinite(m.calibration.threshold));
  EXPECT_TRUE(std::isfinite(m.calibration.f1_threshold));  // val defects exist
  EXPECT_NE(m.postprocess.cell_mean.data, nullptr);
  EXPECT_EQ(m.preprocess.pixel_scale, 0.0f);
  EXPECT_EQ(m.postprocess.edge_mean.data, nullptr);
  auto det = Detector::Create(loaded->bytes.data(), loaded->bytes.size());
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  auto bytes = cli::ReadFileBytes((root / "val/spot/d0.png").string());
  ASSERT_TRUE(bytes.ok());
  auto r = (*det)->DetectEncoded(bytes->data(), bytes->size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(std::isfinite((*r)->score));
  EXPECT_EQ((*r)->map_width * 4, (*det)->info().input_width);
  EXPECT_EQ((*r)->map_height * 4, (*det)->info().input_height);
  for (float v : (*r)->map) ASSERT_TRUE(std::isfinite(v));
  if (global_weight > 0) {
    EXPECT_NE(loaded->model->graph.nodes.size(), 0u);
    EXPECT_NE(std::string(reinterpret_cast<const char*>(loaded->bytes.data()), loaded->bytes.size())
                  .find("glob_map"),
              std::string::npos);
  }
  fs::remove_all(root);
 }
}

// `--steps N --seed S` is a repeatable run: exactly N steps, and a second run
// with the same options writes the same model (the card's creation time and
// timings aside): the same calibration and, bit for bit, the same map of a
// val image. Another seed gives another model. Auto threads mean one thread
// here (LibTorch's float sums depend on the thread count).
TEST(TrainEndToEnd, StepsAndSeedRepeatTheRun) {
  fs::path root = MakeTinyDataset();
  auto bytes = cli::ReadFileBytes((root / "val/spot/d0.png").string());
  ASSERT_TRUE(bytes.ok());
  struct Run {
    Calibration cal;
    std::vector<float> map;
    nlohmann::json card;
  };
  auto train = [&](int seed, const std::string& name) -> Run {
    train::TrainOptions opt = TinyTrainOptions(root);
    opt.out = (root / name).string();
    opt.steps = 25;
    opt.seed = seed;
    opt.minutes = 0.05;  // the step count, not the budget, decides
    Status st = train::RunTraining(opt);
    EXPECT_TRUE(st.ok()) << st.ToString();
    auto loaded = cli::LoadModelFile(opt.out);
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status().ToString();
      return {};
    }
    auto det = Detector::Create(loaded->bytes.data(), loaded->bytes.size());
    if (!det.ok()) {
      ADD_FAILURE() << det.status().ToString();
      return {};
    }
    auto r = (*det)->DetectEncoded(bytes->data(), bytes->size());
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      return {};
    }
    return {loaded->model->calibration, (*r)->map, nlohmann::json::parse(loaded->model->card_json)};
  };
  Run a = train(5, "a.flawlens"), b = train(5, "b.flawlens"), c = train(6, "c.flawlens");
  ASSERT_FALSE(a.map.empty());
  ASSERT_EQ(a.map.size(), b.map.size());
  ASSERT_EQ(a.map.size(), c.map.size());
  EXPECT_EQ(a.card["metrics"]["steps"], 25);
  EXPECT_EQ(c.card["metrics"]["steps"], 25);
  EXPECT_EQ(a.cal.offset, b.cal.offset);
  EXPECT_EQ(a.cal.scale, b.cal.scale);
  EXPECT_EQ(a.cal.threshold, b.cal.threshold);
  EXPECT_EQ(0, std::memcmp(a.map.data(), b.map.data(), a.map.size() * sizeof(float)));
  size_t differ = 0;
  for (size_t i = 0; i < a.map.size(); ++i) differ += a.map[i] != c.map[i];
  EXPECT_GT(differ, a.map.size() / 2);
  EXPECT_NE(a.cal.offset, c.cal.offset);
  fs::remove_all(root);
}

// Training images of different sizes: `--fit auto` keeps one pixel scale
// (mirror-padded canvas, edge calibration instead of per-cell calibration),
// the detector returns only the cells over each image, and the engine's
// whole pipeline (preprocess, network, masking, edge calibration, max)
// reproduces the trainer's validation AUROC, which LibTorch computed (the
// labels are half wrong on purpose, so the AUROC depends on how every pair of
// images is ordered).
TEST(TrainEndToEnd, ImagesOfDifferentSizesKeepTheirPixelScale) {
  fs::path root = fs::temp_directory_path() / ("flawlens_train_scale_" + std::to_string(getpid()));
  fs::remove_all(root);
  for (const char* d : {"train/good", "val/good", "val/spot", "val/masks/spot"})
    fs::create_directories(root / d);
  std::mt19937 rng(9);
  auto size_of = [](int i) { return std::pair<int, int>{36 + 7 * (i % 7), 30 + 5 * (i % 4)}; };
  for (int i = 0; i < 14; ++i) {
    auto [w, h] = size_of(i);
    WriteGray(root / "train/good" / ("g" + std::to_string(i) + ".png"), Texture(w, h, &rng), w, h);
  }
  std::vector<fs::path> val_paths;
  std::vector<bool> val_defective;
  for (int i = 0; i < 8; ++i) {
    auto [w, h] = size_of(i + 3);
    std::vector<uint8_t> px = Texture(w, h, &rng), mask(size_t(w) * h, 0);
    // Labels that disagree with the spots for half of the images, so that
    // the AUROC compared below is not trivially 1 for any working pipeline.
    const bool defect = i % 2 == 1, spot = i % 4 == 1 || i % 4 == 2;
    if (spot) {
      const int cx = w / 3 + i, cy = h / 2;
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < 16 + 4 * i) {
            px[size_t(y) * w + x] = uint8_t(10 + 20 * (i % 3));
            mask[size_t(y) * w + x] = 255;
          }
    }
    std::string n = "v" + std::to_string(i) + ".png";
    fs::path p = root / (defect ? "val/spot" : "val/good") / n;
    WriteGray(p, px, w, h);
    if (defect) WriteGray(root / "val/masks/spot" / n, mask, w, h);
    val_paths.push_back(p);
    val_defective.push_back(defect);
  }
  train::TrainOptions opt = TinyTrainOptions(root);
  opt.fit = "auto";
  Status st = train::RunTraining(opt);  // includes the engine-vs-LibTorch self-check
  ASSERT_TRUE(st.ok()) << st.ToString();

  auto loaded = cli::LoadModelFile(opt.out);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Model& m = *loaded->model;
  EXPECT_GT(m.preprocess.pixel_scale, 0.0f);
  EXPECT_EQ(m.postprocess.cell_mean.data, nullptr);
  ASSERT_NE(m.postprocess.edge_mean.data, nullptr);
  ASSERT_NE(m.postprocess.edge_std.data, nullptr);
  auto det = Detector::Create(loaded->bytes.data(), loaded->bytes.size());
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  const int full_w = (*det)->info().map_width, full_h = (*det)->info().map_height;
  std::vector<float> scores;
  bool some_smaller = false;
  for (size_t i = 0; i < val_paths.size(); ++i) {
    auto bytes = cli::ReadFileBytes(val_paths[i].string());
    ASSERT_TRUE(bytes.ok());
    auto r = (*det)->DetectEncoded(bytes->data(), bytes->size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const Detection& d = **r;
    scores.push_back(d.score);
    ASSERT_LE(d.map_width, full_w);
    ASSERT_LE(d.map_height, full_h);
    some_smaller |= d.map_width < full_w || d.map_height < full_h;
    // The kept cells lie on the image (to within half a cell).
    auto [w, h] = size_of(int(i) + 3);
    const float cell_w = d.map_rect.w / d.map_width, cell_h = d.map_rect.h / d.map_height;
    EXPECT_GE(d.map_rect.x, -0.5f * cell_w);
    EXPECT_GE(d.map_rect.y, -0.5f * cell_h);
    EXPECT_LE(d.map_rect.x + d.map_rect.w, w + 0.5f * cell_w);
    EXPECT_LE(d.map_rect.y + d.map_rect.h, h + 0.5f * cell_h);
  }
  EXPECT_TRUE(some_smaller);
  nlohmann::json card = nlohmann::json::parse(m.card_json);
  ASSERT_TRUE(card["metrics"].contains("val_image_auroc"));
  const double engine_auroc = train::Auroc(scores, val_defective);
  EXPECT_NEAR(engine_auroc, card["metrics"]["val_image_auroc"].get<double>(), 1e-9);
  EXPECT_LT(engine_auroc, 0.99);
  fs::remove_all(root);
}

// Each synthetic anomaly kind alone: it labels pixels, every labelled pixel
// changed visibly, and an unlabelled image is returned unchanged.
TEST(TrainSynth, EachKindLabelsWhatItChanges) {
  std::mt19937 rng(5);
  auto make = [&](int w, int h) {
    train::FloatImage im;
    im.w = w;
    im.h = h;
    im.c = 1;
    for (uint8_t v : Texture(w, h, &rng)) im.data.push_back(v);
    return im;
  };
  std::vector<train::FloatImage> pool = {make(96, 96), make(96, 96), make(96, 96)};
  for (int kind = 0; kind < 7; ++kind) {
    SCOPED_TRACE("kind " + std::to_string(kind));
    train::SynthConfig cfg;
    float* w[7] = {&cfg.patch, &cfg.region, &cfg.spot, &cfg.crack, &cfg.edge, &cfg.noise, &cfg.band};
    for (float* v : w) *v = 0;
    *w[kind] = 1;
    cfg.max_anomalies = 1;
    int labelled_images = 0;
    double max_fraction = 0;
    for (int t = 0; t < 20; ++t) {
      train::FloatImage img = make(96, 96), orig = img;
      std::vector<float> mask;
      train::PaintAnomalies(&img, &mask, pool, cfg, &rng);
      ASSERT_EQ(mask.size(), size_t(96 * 96));
      int n = 0;
      for (size_t i = 0; i < mask.size(); ++i) {
        if (mask[i] <= 0) continue;
        ++n;
        ASSERT_GE(std::fabs(img.data[i] - orig.data[i]), cfg.min_change - 1e-3f) << "pixel " << i;
      }
      labelled_images += n > 0;
      max_fraction = std::max(max_fraction, n / double(mask.size()));
      if (n == 0) EXPECT_EQ(img.data, orig.data);
    }
    EXPECT_GE(labelled_images, 10);
    if (kind == 6) {  // a band covers 20-50 % of the crop (before the min-change rule)
      EXPECT_GT(max_fraction, 0.15);
      EXPECT_LT(max_fraction, 0.6);
    }
  }
}

TEST(TrainErrors, EmptyFolderIsAClearError) {
  fs::path root = fs::temp_directory_path() / ("flawlens_train_empty_" + std::to_string(getpid()));
  fs::create_directories(root);
  train::TrainOptions opt;
  opt.data = root.string();
  opt.out = (root / "m.flawlens").string();
  Status st = train::RunTraining(opt);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(root.string()), std::string::npos) << st.message();
  opt.data = (root / "missing").string();
  st = train::RunTraining(opt);
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(fs::exists(opt.out));
  fs::remove_all(root);
}

TEST(TrainGroups, CaptureTagsAreIgnoredForHoldout) {
  EXPECT_EQ(cli::GroupKey("/a/exp3_num_123.jpg"), "num_123");
  EXPECT_EQ(cli::GroupKey("/a/exp1_num_123.jpg"), "num_123");
  EXPECT_EQ(cli::GroupKey("/a/000.png"), "000");
  EXPECT_EQ(cli::GroupKey("img_01.png"), "img_01");
}

// Drives the tuner with step durations that depend on the thread count it
// set; returns the counts it applied, in order.
std::vector<int> RunTuner(double t1, double t2, int steps_total, int* final_threads) {
  std::vector<int> applied;
  int now = 0;
  train::ThreadTuner tuner(2, /*every=*/10.0, /*steps=*/5, [&](int n) {
    applied.push_back(n);
    now = n;
  });
  double t = 0;
  for (int i = 0; i < steps_total; ++i) {
    const double dt = now == 1 ? t1 : t2;
    t += dt;
    tuner.OnStep(dt, t);
  }
  *final_threads = tuner.threads();
  return applied;
}

TEST(TrainThreads, AutoKeepsTheFasterCountAndRetimes) {
  int final_threads = 0;
  // Two threads faster (idle machine): switches to 2 at the first trial and stays.
  std::vector<int> a = RunTuner(/*t1=*/0.2, /*t2=*/0.14, 400, &final_threads);
  EXPECT_EQ(final_threads, 2);
  ASSERT_GE(a.size(), 3u);
  EXPECT_EQ(a[0], 1);  // starts with one thread
  EXPECT_EQ(a[1], 2);  // first trial
  EXPECT_EQ(a[2], 2);  // kept
  // Later trials time 1 thread again and go back to 2 each time.
  EXPECT_GE(a.size(), 7u);
  for (size_t i = 3; i + 1 < a.size(); i += 2) {
    EXPECT_EQ(a[i], 1);
    EXPECT_EQ(a[i + 1], 2);
  }
  // Two threads slower (a loaded core): tries 2, returns to 1, never keeps 2.
  std::vector<int> b = RunTuner(/*t1=*/0.2, /*t2=*/0.7, 400, &final_threads);
  EXPECT_EQ(final_threads, 1);
  ASSERT_GE(b.size(), 3u);
  for (size_t i = 1; i + 1 < b.size(); i += 2) {
    EXPECT_EQ(b[i], 2);
    EXPECT_EQ(b[i + 1], 1);
  }
  // Within 5 %: not worth switching.
  RunTuner(/*t1=*/0.2, /*t2=*/0.195, 400, &final_threads);
  EXPECT_EQ(final_threads, 1);
  // One core: never changes anything.
  std::vector<int> c;
  train::ThreadTuner one(1, 10.0, 5, [&](int n) { c.push_back(n); });
  for (int i = 0; i < 400; ++i) EXPECT_FALSE(one.OnStep(0.1, 0.1 * i));
  EXPECT_EQ(c, std::vector<int>{1});
}

TEST(TrainMetrics, Auroc) {
  EXPECT_DOUBLE_EQ(train::Auroc({0.1f, 0.2f, 0.8f, 0.9f}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(train::Auroc({0.5f, 0.5f}, {false, true}), 0.5);
  EXPECT_NEAR(train::Auroc({0.1f, 0.6f, 0.4f, 0.9f}, {false, false, true, true}), 0.75, 1e-9);
}

}  // namespace
