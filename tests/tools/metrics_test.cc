// Metrics on hand-made cases with known answers, and against brute force.
#include "cli/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

namespace flawlens::cli {
namespace {

// P(pos > neg) + 0.5 P(pos == neg), by enumerating all pairs.
double BruteAuroc(const std::vector<float>& s, const std::vector<bool>& l) {
  double num = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!l[i]) continue;
    for (size_t j = 0; j < s.size(); ++j) {
      if (l[j]) continue;
      num += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
      pairs += 1;
    }
  }
  return num / pairs;
}

TEST(Auroc, PerfectInvertedAndTies) {
  EXPECT_DOUBLE_EQ(Auroc({0.1f, 0.2f, 0.8f, 0.9f}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(Auroc({0.9f, 0.8f, 0.2f, 0.1f}, {false, false, true, true}), 0.0);
  EXPECT_DOUBLE_EQ(Auroc({0.5f, 0.5f, 0.5f, 0.5f}, {false, true, false, true}), 0.5);
  // pos {0.8, 0.4} vs neg {0.5, 0.1}: 3 of 4 pairs ordered.
  EXPECT_DOUBLE_EQ(Auroc({0.8f, 0.4f, 0.5f, 0.1f}, {true, true, false, false}), 0.75);
  // pos {0.5} vs neg {0.5, 0.1}: one tie (0.5) + one win.
  EXPECT_DOUBLE_EQ(Auroc({0.5f, 0.5f, 0.1f}, {true, false, false}), 0.75);
}

TEST(Auroc, UndefinedWithOneClass) {
  EXPECT_TRUE(std::isnan(Auroc({0.1f, 0.2f}, {true, true})));
  EXPECT_TRUE(std::isnan(Auroc({0.1f, 0.2f}, {false, false})));
  EXPECT_TRUE(std::isnan(Auroc({}, {})));
  EXPECT_TRUE(std::isnan(Auroc({0.1f}, {true, false})));
}

TEST(Auroc, MatchesBruteForceWithManyTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> s;
    std::vector<bool> l;
    const int n = 5 + trial * 7;
    for (int i = 0; i < n; ++i) {
      const bool pos = rng() % 3 == 0;
      l.push_back(pos);
      s.push_back(static_cast<float>(rng() % 6 + (pos ? 2 : 0)));
    }
    l[0] = true;
    l[1] = false;
    EXPECT_NEAR(Auroc(s, l), BruteAuroc(s, l), 1e-12) << "trial " << trial;
  }
}

// n good ~ N(0,1) and n defective ~ N(1,1) (true AUROC 0.76).
void Normals(int n, uint32_t seed, std::vector<float>* s, std::vector<bool>* l) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int i = 0; i < 2 * n; ++i) {
    l->push_back(i >= n);
    s->push_back(g(rng) + (i >= n ? 1.0f : 0.0f));
  }
}

TEST(AurocBootstrap, IntervalCoversTheEstimateAndNarrowsWithMoreImages) {
  std::vector<float> s_small, s_large;
  std::vector<bool> l_small, l_large;
  Normals(20, 1, &s_small, &l_small);
  Normals(500, 2, &s_large, &l_large);
  const Interval small = AurocBootstrap(s_small, l_small, {});
  const Interval large = AurocBootstrap(s_large, l_large, {});
  EXPECT_LT(small.lo, Auroc(s_small, l_small));
  EXPECT_GT(small.hi, Auroc(s_small, l_small));
  EXPECT_LT(large.lo, 0.76);  // the true value, 1 - Phi(-1/sqrt(2)) = 0.760
  EXPECT_GT(large.hi, 0.76);
  // Width ~ 1/sqrt(n): 25x the images, about 1/5 of the width.
  const double ratio = (large.hi - large.lo) / (small.hi - small.lo);
  EXPECT_GT(ratio, 0.12);
  EXPECT_LT(ratio, 0.35);
  // Deterministic for a seed; another seed moves the ends a little.
  const Interval again = AurocBootstrap(s_small, l_small, {});
  EXPECT_EQ(again.lo, small.lo);
  EXPECT_EQ(again.hi, small.hi);
  const Interval other = AurocBootstrap(s_small, l_small, {}, 0.95, 2000, 99);
  EXPECT_NEAR(other.lo, small.lo, 0.03);
  EXPECT_NEAR(other.hi, small.hi, 0.03);
  // A wider level gives a wider interval.
  const Interval wide = AurocBootstrap(s_small, l_small, {}, 0.99);
  EXPECT_LE(wide.lo, small.lo);
  EXPECT_GE(wide.hi, small.hi);
}

TEST(AurocBootstrap, CapturesOfOnePartAreDrawnTogether) {
  std::vector<float> s, s5;
  std::vector<bool> l, l5;
  Normals(30, 3, &s, &l);
  // Every image captured 5 times (identical scores), named part<i>.
  std::vector<std::string> parts;
  for (size_t i = 0; i < s.size(); ++i) {
    for (int k = 0; k < 5; ++k) {
      s5.push_back(s[i]);
      l5.push_back(l[i]);
      parts.push_back("part" + std::to_string(i));
    }
  }
  const Interval one = AurocBootstrap(s, l, {});
  const Interval grouped = AurocBootstrap(s5, l5, parts);
  // Drawing whole parts: the same draws as the single captures, the same AUROCs.
  EXPECT_NEAR(grouped.lo, one.lo, 1e-12);
  EXPECT_NEAR(grouped.hi, one.hi, 1e-12);
  // Treating the copies as independent images would claim a much narrower interval.
  const Interval naive = AurocBootstrap(s5, l5, {});
  EXPECT_LT(naive.hi - naive.lo, 0.6 * (one.hi - one.lo));
}

TEST(AurocBootstrap, PerfectAndUndefined) {
  const Interval perfect = AurocBootstrap({0.1f, 0.2f, 0.8f, 0.9f}, {false, false, true, true}, {});
  EXPECT_DOUBLE_EQ(perfect.lo, 1.0);
  EXPECT_DOUBLE_EQ(perfect.hi, 1.0);
  EXPECT_TRUE(std::isnan(AurocBootstrap({0.1f, 0.2f}, {true, true}, {}).lo));
  EXPECT_TRUE(std::isnan(AurocBootstrap({0.1f}, {true, false}, {}).hi));
  EXPECT_TRUE(std::isnan(AurocBootstrap({0.1f, 0.2f}, {true, false}, {"a"}).lo));
}

TEST(RocCurve, PointsPerDistinctScore) {
  // scores 0.9(pos) 0.7(neg) 0.7(pos) 0.2(neg)
  auto roc = RocCurve({0.9f, 0.7f, 0.7f, 0.2f}, {true, false, true, false});
  ASSERT_EQ(roc.size(), 4u);
  EXPECT_DOUBLE_EQ(roc[0].fpr, 0.0);
  EXPECT_DOUBLE_EQ(roc[0].tpr, 0.0);
  EXPECT_TRUE(std::isinf(roc[0].threshold));
  EXPECT_DOUBLE_EQ(roc[1].tpr, 0.5);
  EXPECT_DOUBLE_EQ(roc[1].fpr, 0.0);
  EXPECT_FLOAT_EQ(static_cast<float>(roc[1].threshold), 0.9f);
  EXPECT_DOUBLE_EQ(roc[2].tpr, 1.0);
  EXPECT_DOUBLE_EQ(roc[2].fpr, 0.5);
  EXPECT_DOUBLE_EQ(roc[3].tpr, 1.0);
  EXPECT_DOUBLE_EQ(roc[3].fpr, 1.0);
  // Trapezoid area of the curve equals the rank AUROC (ties -> diagonal).
  std::vector<double> x, y;
  for (const RocPoint& p : roc) {
    x.push_back(p.fpr);
    y.push_back(p.tpr);
  }
  EXPECT_NEAR(AreaUnderCurve(x, y, 1.0),
              Auroc({0.9f, 0.7f, 0.7f, 0.2f}, {true, false, true, false}), 1e-12);
}

TEST(F1, AtThresholdAndBest) {
  const std::vector<float> s = {0.1f, 0.4f, 0.35f, 0.8f, 0.6f};
  const std::vector<bool> l = {false, false, true, true, false};
  // t = 0.35: predicted 0.4(n) 0.35(p) 0.8(p) 0.6(n): tp 2 fp 2 fn 0.
  F1Score f = F1AtThreshold(s, l, 0.35f);  // the float value, as scores are floats
  EXPECT_EQ(f.tp, 2);
  EXPECT_EQ(f.fp, 2);
  EXPECT_EQ(f.fn, 0);
  EXPECT_EQ(f.tn, 1);
  EXPECT_DOUBLE_EQ(f.precision, 0.5);
  EXPECT_DOUBLE_EQ(f.recall, 1.0);
  EXPECT_NEAR(f.f1, 2.0 / 3.0, 1e-12);
  // Best: t = 0.8 -> tp1 fp0 fn1: f1 = 2/3; t = 0.35 -> 2/3 too; t=0.6 -> tp1 fp1 fn1 = 0.5.
  // Equal F1: the higher threshold wins.
  F1Score b = BestF1(s, l);
  EXPECT_NEAR(b.f1, 2.0 / 3.0, 1e-12);
  EXPECT_FLOAT_EQ(static_cast<float>(b.threshold), 0.8f);
  // Perfect separation.
  F1Score p = BestF1({0.1f, 0.2f, 0.9f}, {false, false, true});
  EXPECT_DOUBLE_EQ(p.f1, 1.0);
  EXPECT_FLOAT_EQ(static_cast<float>(p.threshold), 0.9f);
  // Nothing predicted: precision 0 by convention, f1 0.
  F1Score none = F1AtThreshold(s, l, 5.0);
  EXPECT_DOUBLE_EQ(none.precision, 0.0);
  EXPECT_DOUBLE_EQ(none.f1, 0.0);
}

// Against brute force over every distinct score as threshold: the best F1,
// and the highest threshold reaching it, with many ties.
TEST(F1, BestMatchesEveryThresholdTried) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> s(40);
    std::vector<bool> l(40);
    for (size_t i = 0; i < s.size(); ++i) {
      s[i] = float(rng() % 9) * 0.25f;  // few distinct values: many ties
      l[i] = rng() % 3 == 0;
    }
    l[trial % 40] = true;  // at least one defective image
    double best_f1 = -1, best_t = 0;
    for (float t : s) {
      const F1Score f = F1AtThreshold(s, l, t);
      if (f.f1 > best_f1 || (f.f1 == best_f1 && t > best_t)) {
        best_f1 = f.f1;
        best_t = t;
      }
    }
    const F1Score b = BestF1(s, l);
    EXPECT_DOUBLE_EQ(b.f1, best_f1) << trial;
    EXPECT_EQ(b.threshold, best_t) << trial;
    const F1Score at = F1AtThreshold(s, l, b.threshold);
    EXPECT_EQ(b.tp, at.tp);
    EXPECT_EQ(b.fp, at.fp);
  }
}

TEST(F1, BestWithoutDefectsHasNoThreshold) {
  const F1Score b = BestF1({0.2f, 0.7f, 0.7f}, {false, false, false});
  EXPECT_DOUBLE_EQ(b.f1, 0.0);
  EXPECT_TRUE(std::isinf(b.threshold));
  EXPECT_EQ(b.fp, 0);
  EXPECT_EQ(b.tn, 3);
  // Tied scores: one threshold for both (F1 2/3 at 0.7 flags both).
  const F1Score t = BestF1({0.2f, 0.7f, 0.7f}, {false, true, false});
  EXPECT_NEAR(t.f1, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(t.fp, 1);
  EXPECT_FLOAT_EQ(static_cast<float>(t.threshold), 0.7f);
}

TEST(AreaUnderCurve, InterpolatesAtEnd) {
  EXPECT_DOUBLE_EQ(AreaUnderCurve({0, 1}, {0, 1}, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(AreaUnderCurve({0, 1}, {0, 1}, 0.3), 0.045);
  EXPECT_DOUBLE_EQ(AreaUnderCurve({0, 0, 1}, {0, 1, 1}, 0.3), 0.3);
}

TEST(LabelComponents, EightConnectivity) {
  // 1 0 0 1
  // 0 1 0 1
  // 0 0 0 0
  // 1 1 0 0
  const uint8_t m[] = {1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0};
  std::vector<int32_t> labels;
  EXPECT_EQ(LabelComponents(m, 4, 4, &labels), 3);  // diagonal pair joins
  EXPECT_EQ(labels[0], labels[5]);
  EXPECT_EQ(labels[3], labels[7]);
  EXPECT_NE(labels[0], labels[3]);
  EXPECT_EQ(labels[12], labels[13]);
  EXPECT_EQ(labels[2], 0);
  const uint8_t empty[4] = {0, 0, 0, 0};
  EXPECT_EQ(LabelComponents(empty, 2, 2, &labels), 0);
}

TEST(UpsampleMap, BilinearOnCellCentres) {
  const float map[] = {0.0f, 1.0f};
  std::vector<float> out;
  UpsampleMap(map, 2, 1, RectF{0, 0, 4, 2}, 4, 2, &out);
  ASSERT_EQ(out.size(), 8u);
  const float expected[] = {0.0f, 0.25f, 0.75f, 1.0f};
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 4; ++x) EXPECT_FLOAT_EQ(out[y * 4 + x], expected[x]) << x << "," << y;
  }
  // Map covering only the right half: left half clamps to the edge value.
  UpsampleMap(map, 2, 1, RectF{2, 0, 2, 1}, 4, 1, &out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[1], 0.0f);
  EXPECT_FLOAT_EQ(out[2], 0.0f);
  EXPECT_FLOAT_EQ(out[3], 1.0f);
  // 1x1 map: constant.
  const float one = 3.5f;
  UpsampleMap(&one, 1, 1, RectF{}, 3, 3, &out);
  for (float v : out) EXPECT_FLOAT_EQ(v, 3.5f);
}

TEST(PixelAccumulator, PerfectAndInverted) {
  // 4x4 image, region = 2x2 block in the corner.
  std::vector<uint8_t> mask(16, 0);
  mask[0] = mask[1] = mask[4] = mask[5] = 1;
  std::vector<float> good_map(16, 0.1f), perfect(16, 0.1f), inverted(16, 0.9f);
  for (int i : {0, 1, 4, 5}) {
    perfect[i] = 0.9f;
    inverted[i] = 0.1f;
  }
  {
    PixelAccumulator acc(PixelAccumulator::EdgesFromSample({0.1f, 0.9f}));
    acc.Add(perfect.data(), mask.data(), 4, 4);
    acc.Add(good_map.data(), nullptr, 4, 4);
    EXPECT_EQ(acc.positives(), 4);
    EXPECT_EQ(acc.negatives(), 28);
    EXPECT_EQ(acc.regions(), 1);
    EXPECT_DOUBLE_EQ(acc.Auroc(), 1.0);
    EXPECT_DOUBLE_EQ(acc.AurocTieBound(), 0.0);
    EXPECT_DOUBLE_EQ(acc.Pro(0.3), 1.0);
  }
  {
    PixelAccumulator acc(PixelAccumulator::EdgesFromSample({0.1f, 0.9f}));
    acc.Add(inverted.data(), mask.data(), 4, 4);
    EXPECT_DOUBLE_EQ(acc.Auroc(), 0.0);
    EXPECT_DOUBLE_EQ(acc.Pro(0.3), 0.0);  // all 12 negatives fire before the region
  }
}

TEST(PixelAccumulator, ProOfTwoRegionsOneFound) {
  // Region A (1 px) scores 1, region B (3 px) scores 0 like the background.
  // Curve: (0,0) (0,0.5) (1,1); area to 0.3 = 0.3*(0.5+0.65)/2 -> / 0.3 = 0.575.
  // 1 0 0 0 0
  // 0 0 0 1 1
  // 0 0 0 0 1
  const int w = 5, h = 3;
  std::vector<uint8_t> mask(w * h, 0);
  std::vector<float> s(w * h, 0.0f);
  mask[0] = 1;
  s[0] = 1.0f;
  mask[8] = mask[9] = mask[14] = 1;
  PixelAccumulator acc(PixelAccumulator::EdgesFromSample(s));
  acc.Add(s.data(), mask.data(), w, h);
  EXPECT_EQ(acc.regions(), 2);
  EXPECT_NEAR(acc.Pro(0.3), 0.575, 1e-12);
  EXPECT_NEAR(acc.Pro(1.0), 0.5 * (0.5 + 1.0), 1e-12);
  // Pixel AUROC: pos {1,0,0,0} vs 11 negatives at 0: (1*11 + 3*11*0.5) / 44.
  EXPECT_NEAR(acc.Auroc(), (11.0 + 16.5) / 44.0, 1e-12);
}

TEST(PixelAccumulator, ProWeighsRegionsEquallyNotPixels) {
  // Big region (8 px) found, small region (1 px) missed: PRO at FPR 0 = 0.5
  // although 8/9 of the defect pixels are found.
  const int w = 6, h = 3;
  std::vector<uint8_t> mask(w * h, 0);
  std::vector<float> s(w * h, 0.0f);
  for (int y = 0; y < 2; ++y) {
    for (int x = 0; x < 4; ++x) {
      mask[y * w + x] = 1;
      s[y * w + x] = 1.0f;
    }
  }
  mask[2 * w + 5] = 1;  // isolated pixel, score 0
  PixelAccumulator acc(PixelAccumulator::EdgesFromSample(s));
  acc.Add(s.data(), mask.data(), w, h);
  EXPECT_EQ(acc.regions(), 2);
  // Curve (0,0) (0,0.5) (1,1) again.
  EXPECT_NEAR(acc.Pro(0.3), 0.575, 1e-12);
}

TEST(PixelAccumulator, ExactBinsMatchImageAuroc) {
  std::mt19937 rng(3);
  const int w = 17, h = 9;
  std::vector<float> all_s;
  std::vector<bool> all_l;
  std::vector<std::vector<float>> maps;
  std::vector<std::vector<uint8_t>> masks;
  for (int img = 0; img < 4; ++img) {
    std::vector<float> s(w * h);
    std::vector<uint8_t> m(w * h);
    for (int i = 0; i < w * h; ++i) {
      m[i] = rng() % 5 == 0;
      s[i] = static_cast<float>(rng() % 50) * 0.1f + (m[i] ? 1.0f : 0.0f);
      all_s.push_back(s[i]);
      all_l.push_back(m[i] != 0);
    }
    maps.push_back(s);
    masks.push_back(m);
  }
  PixelAccumulator exact(PixelAccumulator::EdgesFromSample(all_s));
  PixelAccumulator coarse(PixelAccumulator::EdgesFromSample(all_s, 8));
  for (int img = 0; img < 4; ++img) {
    exact.Add(maps[img].data(), masks[img].data(), w, h);
    coarse.Add(maps[img].data(), masks[img].data(), w, h);
  }
  const double truth = Auroc(all_s, all_l);
  EXPECT_NEAR(exact.Auroc(), truth, 1e-12);
  // Coarse bins: within the reported bound, and the bound is not vacuous.
  EXPECT_LE(std::fabs(coarse.Auroc() - truth), coarse.AurocTieBound() + 1e-12);
  EXPECT_GT(coarse.AurocTieBound(), 0.0);
  EXPECT_LT(coarse.AurocTieBound(), 0.2);
  // The binned ROC ends at (1,1) and is monotone.
  auto roc = exact.Roc();
  ASSERT_GE(roc.size(), 2u);
  EXPECT_DOUBLE_EQ(roc.back().fpr, 1.0);
  EXPECT_DOUBLE_EQ(roc.back().tpr, 1.0);
  for (size_t i = 1; i < roc.size(); ++i) {
    EXPECT_GE(roc[i].fpr, roc[i - 1].fpr);
    EXPECT_GE(roc[i].tpr, roc[i - 1].tpr);
  }
}

TEST(PixelAccumulator, UndefinedWithoutPositivesOrRegions) {
  std::vector<float> s(4, 0.5f);
  PixelAccumulator acc(PixelAccumulator::EdgesFromSample(s));
  acc.Add(s.data(), nullptr, 2, 2);
  EXPECT_TRUE(std::isnan(acc.Auroc()));
  EXPECT_TRUE(std::isnan(acc.Pro()));
}

TEST(ScoreCalibration, MeanStdAndTheThresholdRule) {
  // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample std sqrt(32 / 7); the threshold is
  // fit::CalibrateScores' at the sensitivity's rate (8 scores: extrapolated
  // above the largest for 1 in 20).
  const Calibration c = ScoreCalibration({2, 4, 4, 4, 5, 5, 7, 9}, 0.5f);
  EXPECT_FLOAT_EQ(c.offset, 5.0f);
  EXPECT_FLOAT_EQ(c.scale, float(std::sqrt(32.0 / 7.0)));
  EXPECT_GT(c.threshold, (9.0f - 5.0f) / c.scale);
  EXPECT_FLOAT_EQ(c.map_low, 0.0f);
  EXPECT_FLOAT_EQ(c.map_high, std::max(1.0f, 2 * c.threshold));
  EXPECT_EQ(c.good_images, 8);
  // More sensitive, a lower threshold.
  EXPECT_LT(ScoreCalibration({2, 4, 4, 4, 5, 5, 7, 9}, 0.9f).threshold, c.threshold);
  // No spread: a tenth of |mean|, at least 1e-3 (never a zero scale).
  EXPECT_FLOAT_EQ(ScoreCalibration({20, 20, 20}, 0.5f).scale, 2.0f);
}

}  // namespace
}  // namespace flawlens::cli
