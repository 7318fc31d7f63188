// The threshold rule: the score above which a new good part is flagged about
// `rate` of the time, estimated from scores of good images that the scoring
// model never saw (out-of-group scores from the teacher's cross-fit, or the
// scores of good photos taken at a new site). One rule for `flawlens train`,
// `flawlens calibrate`, the page's Teach and "Calibrate here", and for the
// false-alarm rate the CLI and the page print beside any threshold.
//
// Estimate (n scores, target rate a):
//   body: the split-conformal order statistic x_(k), k = ceil((n + 1)(1 - a)):
//         a new good score exceeds it with probability at most a when it is
//         exchangeable with the n;
//   tail: an exponential tail fitted to the m = max(8, n / 5) largest scores
//         (excesses over the (m + 1)-th largest), its mean excess raised by
//         one standard error (x (1 + 1 / sqrt(m))) against the optimism of a
//         few points, extrapolated to a.
//   threshold = the tail estimate when k > n (too few scores for the target:
//   extrapolated, with a warning), x_(k) when a is above the tail's share of
//   the scores, else the larger of the two.
#pragma once

#include <string>
#include <vector>

#include "model/model.h"

namespace flawlens::fit {

// The default target: at most about 1 in 20 new good parts flagged. The
// out-of-group estimate is conservative (each fold fits on part of the
// data): at this target, 0-3 % of unseen good parts were flagged on the
// shared data sets, where a 2 % target missed too many defects
// (docs/METHOD-threshold.md).
inline constexpr double kDefaultFalseAlarmRate = 0.05;
// Target rates accepted anywhere.
inline constexpr double kMinFalseAlarmRate = 1e-4, kMaxFalseAlarmRate = 0.5;
// Good scores kept in the calibration section (order statistics, evenly
// spaced when there are more).
inline constexpr int kMaxStoredGoodScores = 512;

// Sensitivity in [0, 1] -> target false-alarm rate: 0.5 is the default
// rate, each +0.25 multiplies the rate by 10 (clamped to the range above).
double SensitivityToRate(double sensitivity);

struct ThresholdEstimate {
  float threshold = 0;      // in the units of the scores given
  double rate = 0;          // the target
  int scores = 0;           // n
  bool extrapolated = false;  // k > n: the tail model alone (too few scores)
  std::vector<std::string> warnings;  // what the data cannot support, and what to add
};

// `scores`: finite scores of good images (any order). `groups`: how many
// independent groups (parts, sessions) they come from (0 = unknown, taken
// as n). Needs at least 2 scores.
Result<ThresholdEstimate> EstimateThreshold(std::vector<float> scores, double rate,
                                            int groups = 0);

// The calibration's good-score summary (sorted order statistics, at most
// kMaxStoredGoodScores) of `scores`.
std::vector<float> SummariseGoodScores(std::vector<float> scores);

// Estimated fraction of new good parts scoring >= threshold, from a
// calibration's good-score summary (`good_scores`, sorted ascending, of
// `good_images` images): the empirical fraction inside the data, the same
// exponential tail as EstimateThreshold beyond it. NaN without a summary.
double EstimatedFalseAlarmRate(const Calibration& calibration, float threshold);

// "about 1 in 50 good parts" / "about 3 in 10 good parts" / "fewer than 1 in
// 10000 good parts" for a rate.
std::string DescribeRate(double rate);

// The score calibration of good raw scores (model units) at a target rate:
// offset = mean, scale = standard deviation (n - 1; a spread of at most 1e-6
// falls back to max(1e-3, 0.1 |mean|)), threshold from EstimateThreshold on
// the normalised scores, the summary and counts stored, heatmap range
// [0, max(1, 2 threshold)].
struct ScoreCalibrationResult {
  Calibration calibration;
  ThresholdEstimate estimate;
};
Result<ScoreCalibrationResult> CalibrateScores(const std::vector<float>& good_raw_scores,
                                               double rate, int groups = 0);

}  // namespace flawlens::fit
