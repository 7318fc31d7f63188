// src/fit/: the linear algebra against known answers, the calibration rules,
// and a Teacher on a small synthetic backbone (built here with WriteModel)
// whose fitted model loads in the Detector, flags an injected defect where it
// is and keeps good images under the threshold.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fit/calibration.h"
#include "fit/linalg.h"
#include "fit/teacher.h"
#include "fit/threshold.h"
#include "flawlens/detector.h"
#include "model/model.h"
#include "test_models.h"

namespace flawlens {
namespace {

using fit::DensityKind;
using fit::FitOptions;
using fit::Teacher;
using fit::TeacherOptions;
using testing::Rng;
using testing::SpecBuilder;

// ---- linear algebra ----------------------------------------------------------

TEST(FitLinalg, CholeskyOfAKnownMatrix) {
  // The textbook example: A = L L^T with L = [[2,0,0],[6,1,0],[-8,5,3]].
  std::vector<double> a = {4, 12, -16, 12, 37, -43, -16, -43, 98};
  ASSERT_TRUE(fit::CholeskyInPlace(a.data(), 3).ok());
  const std::vector<double> l = {2, 0, 0, 6, 1, 0, -8, 5, 3};
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a[size_t(i)], l[size_t(i)], 1e-12) << i;
}

TEST(FitLinalg, CholeskyRejectsAMatrixThatIsNotPositiveDefinite) {
  std::vector<double> a = {1, 2, 2, 1};  // eigenvalues 3 and -1
  Status st = fit::CholeskyInPlace(a.data(), 2);
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("not positive definite"), std::string::npos) << st.message();
  std::vector<double> nan = {std::nan(""), 0, 0, 1};
  EXPECT_FALSE(fit::CholeskyInPlace(nan.data(), 2).ok());
}

TEST(FitLinalg, InverseOfALowerTriangularMatrix) {
  const std::vector<double> l = {2, 0, 0, 6, 1, 0, -8, 5, 3};
  std::vector<double> inv(9);
  fit::InvertLowerTriangular(l.data(), 3, inv.data());
  // Known answer: [[1/2,0,0],[-3,1,0],[19/3,-5/3,1/3]].
  const std::vector<double> expect = {0.5, 0, 0, -3, 1, 0, 19.0 / 3, -5.0 / 3, 1.0 / 3};
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(inv[size_t(i)], expect[size_t(i)], 1e-12) << i;
}

TEST(FitLinalg, ShrunkWhiteningWhitensTheShrunkCovariance) {
  // W (shrunk cov) W^T = I for a random SPD matrix, shrinkage 0.3, floor 0.01.
  const int d = 5;
  Rng rng(11);
  std::vector<double> b(size_t(d) * d), cov(size_t(d) * d, 0.0);
  for (double& v : b) v = rng.Uniform();
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j)
      for (int k = 0; k < d; ++k) cov[size_t(i) * d + j] += b[size_t(i) * d + k] * b[size_t(j) * d + k];
  double trace = 0;
  for (int i = 0; i < d; ++i) trace += cov[size_t(i) * d + i];
  std::vector<double> shrunk = cov;
  for (double& v : shrunk) v *= 0.7;
  for (int i = 0; i < d; ++i) shrunk[size_t(i) * d + i] += 0.3 * trace / d + 0.01;
  std::vector<double> work = cov, w;
  ASSERT_TRUE(fit::ShrunkWhitening(&work, d, 0.3, 0.01, &w).ok());
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) {
      double s = 0;
      for (int k = 0; k < d; ++k)
        for (int l = 0; l < d; ++l) s += w[size_t(i) * d + k] * shrunk[size_t(k) * d + l] * w[size_t(j) * d + l];
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-9) << i << "," << j;
    }
  }
  // Singular covariance (rank 1) without a floor: a clear error.
  std::vector<double> rank1 = {1, 1, 1, 1}, w2;
  EXPECT_FALSE(fit::ShrunkWhitening(&rank1, 2, 0.0, 0.0, &w2).ok());
}

// ---- calibration -------------------------------------------------------------

TEST(FitCalibration, ScoreCalibrationIsTheThresholdRule) {
  Calibration c = fit::ScoreCalibration({1, 2, 3, 4}, 0.5f);
  EXPECT_FLOAT_EQ(c.offset, 2.5f);
  EXPECT_NEAR(c.scale, std::sqrt(5.0 / 3.0), 1e-6);  // sample std
  EXPECT_FLOAT_EQ(c.false_alarm_rate, float(fit::kDefaultFalseAlarmRate));
  EXPECT_EQ(c.good_images, 4);
  EXPECT_EQ(c.good_scores.size(), 4u);
  // Four scores cannot check 1 in 20: the threshold is extrapolated above them.
  EXPECT_GT(c.threshold, c.good_scores.back());
  EXPECT_FLOAT_EQ(c.map_high, std::max(1.0f, 2 * c.threshold));
  EXPECT_FLOAT_EQ(fit::ScoreCalibration({5, 5, 5}, 0.5f).scale, 0.5f);  // 0.1 |mean|
  // Higher sensitivity, lower threshold.
  EXPECT_LT(fit::ScoreCalibration({1, 2, 3, 4, 5, 6}, 0.9f).threshold,
            fit::ScoreCalibration({1, 2, 3, 4, 5, 6}, 0.2f).threshold);
}

TEST(FitThreshold, SensitivityMapsToRatesAndBack) {
  EXPECT_DOUBLE_EQ(fit::SensitivityToRate(0.5), fit::kDefaultFalseAlarmRate);
  EXPECT_NEAR(fit::SensitivityToRate(0.75), 10 * fit::kDefaultFalseAlarmRate, 1e-12);
  EXPECT_NEAR(fit::SensitivityToRate(0.25), fit::kDefaultFalseAlarmRate / 10, 1e-12);
  EXPECT_DOUBLE_EQ(fit::SensitivityToRate(1.0), fit::kMaxFalseAlarmRate);
  EXPECT_NEAR(fit::SensitivityToRate(0.0), fit::kDefaultFalseAlarmRate / 100, 1e-12);
  EXPECT_EQ(fit::DescribeRate(0.02), "about 1 in 50 good parts");
  EXPECT_EQ(fit::DescribeRate(0.0133), "about 1 in 75 good parts");
  EXPECT_EQ(fit::DescribeRate(0.3), "about 3 in 10 good parts");
  EXPECT_EQ(fit::DescribeRate(1e-5), "fewer than 1 in 10000 good parts");
}

// Scores of a standard exponential distribution: quantiles are known.
std::vector<float> ExponentialScores(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> s(static_cast<size_t>(n));
  for (float& v : s) v = -std::log(1.0f - 0.999999f * 0.5f * (rng.Uniform() + 1.0f));
  return s;
}

TEST(FitThreshold, ManyScoresGiveTheConformalOrderStatistic) {
  // 2000 scores, rate 0.3: above the tail's share (400 / 2001) -> the order
  // statistic k = ceil(2001 * 0.7) = 1401.
  std::vector<float> s = ExponentialScores(2000, 3);
  auto body = fit::EstimateThreshold(s, 0.3);
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_FALSE(body->extrapolated);
  EXPECT_TRUE(body->warnings.empty());
  std::sort(s.begin(), s.end());
  EXPECT_EQ(body->threshold, std::nextafter(s[1400], INFINITY));
  // Rate 0.05 lies in the tail: not below the order statistic (1901), near
  // the true 95 % quantile of Exp(1), ln 20 = 3.0.
  auto e = fit::EstimateThreshold(s, 0.05);
  ASSERT_TRUE(e.ok());
  EXPECT_GT(e->threshold, s[1900]);
  EXPECT_NEAR(e->threshold, std::log(20.0), 0.3);
  // Rate 0.01 lies in the tail: the larger of the order statistic and the
  // tail model, near ln 100 = 4.6 and not below the order statistic.
  auto t = fit::EstimateThreshold(s, 0.01);
  ASSERT_TRUE(t.ok());
  EXPECT_GE(t->threshold, s[size_t(std::ceil(2001 * 0.99)) - 1]);
  EXPECT_NEAR(t->threshold, std::log(100.0), 0.6);
  // What the calibration summary says about that threshold agrees.
  Calibration c;
  c.good_scores = fit::SummariseGoodScores(s);
  c.good_images = 2000;
  EXPECT_EQ(c.good_scores.size(), size_t(fit::kMaxStoredGoodScores));
  EXPECT_NEAR(fit::EstimatedFalseAlarmRate(c, t->threshold), 0.01, 0.005);
  EXPECT_NEAR(fit::EstimatedFalseAlarmRate(c, e->threshold), 0.05, 0.01);
  EXPECT_GT(fit::EstimatedFalseAlarmRate(c, 1.0f), 0.3);
}

TEST(FitThreshold, FewScoresAreExtrapolatedWithAWarning) {
  const std::vector<float> s = ExponentialScores(30, 5);
  auto e = fit::EstimateThreshold(s, 0.01, 4);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->extrapolated);
  EXPECT_GT(e->threshold, *std::max_element(s.begin(), s.end()));
  ASSERT_EQ(e->warnings.size(), 2u);
  EXPECT_NE(e->warnings[0].find("at least 99"), std::string::npos) << e->warnings[0];
  EXPECT_NE(e->warnings[1].find("only 4 distinct"), std::string::npos) << e->warnings[1];
  // Bad input: clear errors.
  EXPECT_EQ(fit::EstimateThreshold({1.0f}, 0.01).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(fit::EstimateThreshold({1.0f, NAN}, 0.01).status().code(), ErrorCode::kNonFinite);
  EXPECT_EQ(fit::EstimateThreshold(s, 0.9).status().code(), ErrorCode::kInvalidArgument);
  // Constant scores: just above them.
  auto flat = fit::EstimateThreshold(std::vector<float>(200, -2.0f), 0.02);
  ASSERT_TRUE(flat.ok());
  EXPECT_GT(flat->threshold, -2.0f);
  EXPECT_LT(flat->threshold, -1.99f);
}

TEST(FitCalibration, CellCalibrationMeanStdSmoothingFloorAndShrink) {
  // Two 3x3 maps: cell values a and a + 2 (std sqrt(2)), a = the cell index;
  // the 3x3 replicate box smooths the means.
  std::vector<float> maps(18);
  for (int i = 0; i < 9; ++i) {
    maps[size_t(i)] = float(i);
    maps[size_t(9 + i)] = float(i + 2);
  }
  auto cc = fit::FitCellCalibration(maps.data(), 2, 3, 3, false, 0.0f);
  ASSERT_TRUE(cc.ok()) << cc.status().ToString();
  // Centre cell: mean of all cells' means (1..9) = 5; corner (0,0): mean of
  // replicated 3x3 around it: cells {0,0,1,0,0,1,3,3,4} + 1 = 13/9 + 1.
  EXPECT_NEAR(cc->mean[4], 5.0, 1e-6);
  EXPECT_NEAR(cc->mean[0], 12.0 / 9.0 + 1.0, 1e-6);
  for (float s : cc->std) EXPECT_NEAR(s, std::sqrt(2.0), 1e-6);
  // Shrink 1: one global std; a cell with no spread gets the floor first.
  maps[9 + 4] = 4;  // centre cell identical in both maps
  auto g = fit::FitCellCalibration(maps.data(), 2, 3, 3, false, 1.0f);
  ASSERT_TRUE(g.ok());
  for (float s : g->std) EXPECT_FLOAT_EQ(s, g->std[0]);
  EXPECT_EQ(fit::FitCellCalibration(maps.data(), 1, 3, 3, false, 0.5f).status().code(),
            ErrorCode::kInvalidArgument);
}

// ---- Teacher on a synthetic backbone ----------------------------------------

constexpr int kSide = 64;

// 64x64 gray -> conv 3x3/2 (8, relu) -> conv 3x3/2 (16, relu) = the 16x16x16
// feature map, and one node after it that is not part of the backbone output.
std::vector<uint8_t> TinyBackbone(const std::string& card = R"({"kind":"backbone","name":"tiny",
    "licence":"test","origin":"tests/unit/fit_test.cc"})") {
  SpecBuilder b(kSide, kSide, 1, 21);
  b.Conv("c1", "input", 8, 3, 2, 1, "relu").Conv("c2", "c1", 16, 3, 2, 1, "relu");
  b.Conv("unused", "c2", 4, 1);
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = kSide;
  pre.channels = 1;
  return WriteModel(b.Build("c2", pre, "{}", "{}", card));
}

struct Gray {
  std::vector<uint8_t> px;
  ImageView view() const { return {px.data(), kSide, kSide, PixelFormat::kGray8, 0}; }
};

// A striped texture with a random phase, contrast and noise: the normal
// variation of "good" images.
Gray GoodImage(uint64_t seed) {
  Rng rng(seed);
  const float phase = 3.14159f * rng.Uniform(), amp = 30 + 5 * rng.Uniform();
  Gray g;
  g.px.resize(kSide * kSide);
  for (int y = 0; y < kSide; ++y) {
    for (int x = 0; x < kSide; ++x) {
      const float v = 128 + amp * std::sin(0.35f * x + 0.2f * y + phase) + 8 * rng.Uniform();
      g.px[size_t(y) * kSide + x] = uint8_t(std::clamp(v, 0.0f, 255.0f));
    }
  }
  return g;
}

// A bright 10x10 square at (40, 16) (x, y).
Gray WithDefect(Gray g) {
  for (int y = 16; y < 26; ++y)
    for (int x = 40; x < 50; ++x) g.px[size_t(y) * kSide + x] = 250;
  return g;
}

std::unique_ptr<Teacher> TaughtTeacher(const std::vector<uint8_t>& backbone, int images,
                                       uint32_t seed = 1) {
  TeacherOptions to;
  to.dims = 8;
  to.seed = seed;
  auto t = Teacher::Create(backbone.data(), backbone.size(), to);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  if (!t.ok()) return nullptr;
  for (int i = 0; i < images; ++i) {
    auto added = (*t)->AddImage(GoodImage(1000 + uint64_t(i)).view());
    EXPECT_TRUE(added.ok()) << added.status().ToString();
  }
  return std::move(t).value();
}

void ExpectDetects(const std::vector<uint8_t>& model, const std::string& what) {
  auto det = Detector::Create(model.data(), model.size());
  ASSERT_TRUE(det.ok()) << what << ": " << det.status().ToString();
  EXPECT_EQ((*det)->info().map_width, 16);
  // Unseen good images stay under the threshold (3 std of the held-out
  // images' scores: a rare false alarm is allowed), every defect above them.
  float max_good = -1e9f;
  int false_alarms = 0;
  for (int i = 0; i < 10; ++i) {
    auto r = (*det)->Detect(GoodImage(5000 + uint64_t(i)).view());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    max_good = std::max(max_good, (*r)->score);
    false_alarms += (*r)->anomalous;
  }
  EXPECT_LE(false_alarms, 1) << what << ": good images over the threshold (max " << max_good << ")";
  for (int i = 0; i < 4; ++i) {
    auto r = (*det)->Detect(WithDefect(GoodImage(6000 + uint64_t(i))).view());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const Detection& d = **r;
    EXPECT_TRUE(d.anomalous) << what << ": defect image " << i << " scored " << d.score
                             << " (threshold " << d.threshold << ", good max " << max_good << ")";
    EXPECT_GT(d.score, max_good) << what << ": defect image " << i;
    // The hottest cell is on the defect: pixels 40..50 x 16..26 -> cells 10..12 x 4..6.
    const int arg = int(std::max_element(d.map.begin(), d.map.end()) - d.map.begin());
    const int cx = arg % d.map_width, cy = arg / d.map_width;
    EXPECT_GE(cx, 9) << what;
    EXPECT_LE(cx, 13) << what;
    EXPECT_GE(cy, 3) << what;
    EXPECT_LE(cy, 7) << what;
  }
}

TEST(FitTeacher, SharedGaussianModelFlagsTheDefectAndPassesGoodImages) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  auto t = TaughtTeacher(backbone, 40);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->map_width(), 16);
  EXPECT_EQ(t->feature_channels(), 16);
  EXPECT_EQ(t->feature_node(), "c2");
  EXPECT_EQ(t->images(), 40);
  FitOptions fo;
  fo.density = DensityKind::kShared;
  std::vector<float> progress;
  auto r = t->Fit(fo, [&](float f) { progress.push_back(f); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(progress.empty());
  EXPECT_FLOAT_EQ(progress.back(), 1.0f);
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  ExpectDetects(r->model, "shared");
  // The card records the backbone and the fit.
  auto det = Detector::Create(r->model.data(), r->model.size());
  ASSERT_TRUE(det.ok());
  auto card = nlohmann::json::parse((*det)->info().card_json);
  EXPECT_EQ(card["backbone"]["name"], "tiny");
  EXPECT_EQ(card["backbone"]["licence"], "test");
  EXPECT_EQ(card["fit"]["feature_node"], "c2");
  EXPECT_EQ(card["fit"]["density"], "shared");
  EXPECT_EQ(card["fit"]["images"], 40);
  EXPECT_EQ(card["taught_by"], "flawlens fit");
  // Camera frames (no group): five contiguous blocks, one per fold; every
  // frame scored out of its block sets the threshold.
  EXPECT_EQ(r->groups, 5);
  EXPECT_EQ(r->folds, 5);
  EXPECT_EQ(r->calibration.good_images, 40);
  EXPECT_EQ((*det)->info().good_images, 40);
  EXPECT_FLOAT_EQ((*det)->info().false_alarm_rate, float(fit::kDefaultFalseAlarmRate));
}

TEST(FitTeacher, PerPositionModelFlagsTheDefectAndPassesGoodImages) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  auto t = TaughtTeacher(backbone, 40);
  ASSERT_TRUE(t);
  FitOptions fo;
  fo.density = DensityKind::kPerPosition;
  auto r = t->Fit(fo);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectDetects(r->model, "per position");
  // A covariance per cell, and one per 8x8 region.
  for (int region : {1, 8}) {
    fo.region = region;
    auto g = t->Fit(fo);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    ExpectDetects(g->model, "per position, region " + std::to_string(region));
  }
}

TEST(FitTeacher, TheEngineScoresAsTheFit) {
  // The fit's score of image 0 under the written density is what the engine
  // computes from the file; the out-of-group scores are higher on average
  // (each image was scored by a density fitted without it).
  const std::vector<uint8_t> backbone = TinyBackbone();
  for (DensityKind kind : {DensityKind::kShared, DensityKind::kPerPosition}) {
    auto t = TaughtTeacher(backbone, 30);
    ASSERT_TRUE(t);
    FitOptions fo;
    fo.density = kind;
    auto r = t->Fit(fo);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto det = Detector::Create(r->model.data(), r->model.size());
    ASSERT_TRUE(det.ok()) << det.status().ToString();
    auto d = (*det)->Detect(GoodImage(1000).view());
    ASSERT_TRUE(d.ok());
    EXPECT_NEAR((*d)->raw_score, r->first_raw, 1e-3f * (1 + std::fabs(r->first_raw)))
        << fit::DensityKindName(kind);
    ASSERT_EQ(r->oof_raw.size(), 30u);
    for (float v : r->oof_raw) EXPECT_TRUE(std::isfinite(v));
  }
}

TEST(FitTeacher, AnotherInputSizeKeepsThePartsAspect) {
  // The 64x64 backbone taught at 96x64: a 24x16 map, and the written model
  // resizes to 96x64 and scores as the fit.
  const std::vector<uint8_t> backbone = TinyBackbone();
  TeacherOptions to;
  to.dims = 8;
  to.input_width = 96;
  to.input_height = 64;
  auto t = Teacher::Create(backbone.data(), backbone.size(), to);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->map_width(), 24);
  EXPECT_EQ((*t)->map_height(), 16);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*t)->AddImage(GoodImage(1000 + uint64_t(i)).view()).ok());
  auto r = (*t)->Fit({});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto det = Detector::Create(r->model.data(), r->model.size());
  ASSERT_TRUE(det.ok()) << det.status().ToString();
  EXPECT_EQ((*det)->info().input_width, 96);
  EXPECT_EQ((*det)->info().input_height, 64);
  EXPECT_EQ((*det)->info().map_width, 24);
  auto d = (*det)->Detect(GoodImage(1000).view());
  ASSERT_TRUE(d.ok());
  EXPECT_NEAR((*d)->raw_score, r->first_raw, 1e-3f * (1 + std::fabs(r->first_raw)));
  // Sizes the strides do not divide: a clear error.
  to.input_width = 100;
  EXPECT_EQ(Teacher::Create(backbone.data(), backbone.size(), to).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST(FitTeacher, GroupsStayInOneFoldAndNearDuplicatesAreLinked) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  TeacherOptions to;
  to.dims = 8;
  auto t = Teacher::Create(backbone.data(), backbone.size(), to);
  ASSERT_TRUE(t.ok());
  // 12 parts (each its own brightness), three photos each under its own
  // name; parts 0..3 photographed once more, one level brighter, under an
  // unrelated name (the lightings of one tile carry unrelated file numbers).
  auto part = [](int p, int gain) {
    Gray g = GoodImage(7000 + uint64_t(p));
    for (uint8_t& v : g.px) v = uint8_t(std::clamp(int(v) - 90 + 15 * p + gain, 0, 255));
    return g;
  };
  for (int p = 0; p < 12; ++p) {
    for (int k = 0; k < 3; ++k) {
      ASSERT_TRUE((*t)->AddImage(part(p, k).view(), {}, "part" + std::to_string(p)).ok());
    }
  }
  for (int p = 0; p < 4; ++p) {
    ASSERT_TRUE((*t)->AddImage(part(p, 1).view(), {}, "other" + std::to_string(p)).ok());
  }
  FitOptions fo;
  auto r = (*t)->Fit(fo);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->group_of.size(), 40u);
  for (int p = 0; p < 12; ++p) {
    EXPECT_EQ(r->group_of[size_t(3 * p)], r->group_of[size_t(3 * p + 1)]);
    EXPECT_EQ(r->group_of[size_t(3 * p)], r->group_of[size_t(3 * p + 2)]);
  }
  for (int p = 0; p < 4; ++p) {
    EXPECT_EQ(r->group_of[size_t(36 + p)], r->group_of[size_t(3 * p)]) << "near-duplicate of part " << p;
  }
  EXPECT_EQ(r->groups, 12);
  // Without linking the renamed photos are groups of their own.
  fo.link = 0;
  auto u = (*t)->Fit(fo);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->groups, 16);
}

TEST(FitTeacher, SameSeedSameModelOtherSeedOtherModel) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  FitOptions fo;
  auto a = TaughtTeacher(backbone, 25, 7)->Fit(fo);
  auto b = TaughtTeacher(backbone, 25, 7)->Fit(fo);
  auto c = TaughtTeacher(backbone, 25, 8)->Fit(fo);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->model, b->model);
  EXPECT_NE(a->model, c->model);
}

TEST(FitTeacher, ATaughtModelCanBeTaughtAgain) {
  // Its graph is cut at the recorded feature node: the same images give the
  // same model again.
  const std::vector<uint8_t> backbone = TinyBackbone();
  FitOptions fo;
  fo.density = DensityKind::kShared;
  auto first = TaughtTeacher(backbone, 25)->Fit(fo);
  ASSERT_TRUE(first.ok());
  auto again = TaughtTeacher(first->model, 25);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->feature_node(), "c2");
  auto second = again->Fit(fo);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(first->model, second->model);
}

TEST(FitTeacher, BadInputGivesClearErrors) {
  const std::vector<uint8_t> backbone = TinyBackbone();
  // Not a backbone (no kind, no feature node).
  const std::vector<uint8_t> plain = TinyBackbone(R"({"name":"a detector"})");
  auto np = Teacher::Create(plain.data(), plain.size());
  EXPECT_EQ(np.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(np.status().message().find("not a backbone"), std::string::npos)
      << np.status().message();
  // Not a model at all.
  const std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_FALSE(Teacher::Create(junk.data(), junk.size()).ok());
  // Bad options.
  TeacherOptions bad;
  bad.pool = 2;
  EXPECT_EQ(Teacher::Create(backbone.data(), backbone.size(), bad).status().code(),
            ErrorCode::kInvalidArgument);
  bad = {};
  bad.channel_begin = 10;
  bad.channel_end = 40;
  EXPECT_EQ(Teacher::Create(backbone.data(), backbone.size(), bad).status().code(),
            ErrorCode::kInvalidArgument);

  // Too few images.
  auto few = TaughtTeacher(backbone, 5);
  ASSERT_TRUE(few);
  auto r = few->Fit({});
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("too few images"), std::string::npos) << r.status().message();

  // A blur wider than the map.
  auto t = TaughtTeacher(backbone, 25);
  ASSERT_TRUE(t);
  FitOptions wide;
  wide.blur_sigma = 6;
  EXPECT_EQ(t->Fit(wide).status().code(), ErrorCode::kInvalidArgument);

  // Every image the same: no variation to learn.
  auto same = Teacher::Create(backbone.data(), backbone.size());
  ASSERT_TRUE(same.ok());
  const Gray g = GoodImage(3);
  for (int i = 0; i < 25; ++i) ASSERT_TRUE((*same)->AddImage(g.view()).ok());
  for (DensityKind kind : {DensityKind::kShared, DensityKind::kPerPosition}) {
    FitOptions fo;
    fo.density = kind;
    auto s = (*same)->Fit(fo);
    EXPECT_EQ(s.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find("same features"), std::string::npos) << s.status().message();
  }

  // A bad image.
  ImageView empty;
  EXPECT_FALSE((*same)->AddImage(empty).ok());
}

TEST(FitTeacher, NonFiniteFeaturesAreRejected) {
  // Weights of 1e38 overflow to inf (and inf - inf = NaN) on any bright pixel.
  SpecBuilder b(kSide, kSide, 1, 3);
  b.Conv("c1", "input", 4, 3, 2, 1, "none");
  PreprocessConfig pre;
  pre.resize_w = pre.resize_h = kSide;
  pre.channels = 1;
  ModelSpec spec = b.Build("c1", pre, "{}", "{}", R"({"kind":"backbone"})");
  for (ModelTensor& t : spec.tensors) {
    if (t.name == "c1.weight") {
      for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = (i % 2) ? 3e38f : -3e38f;
    }
  }
  const std::vector<uint8_t> bytes = WriteModel(spec);
  auto t = Teacher::Create(bytes.data(), bytes.size());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto r = (*t)->AddImage(GoodImage(1).view());
  EXPECT_EQ(r.status().code(), ErrorCode::kNonFinite);
  EXPECT_EQ((*t)->images(), 0);
}

}  // namespace
}  // namespace flawlens
