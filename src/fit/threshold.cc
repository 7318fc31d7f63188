#include "fit/threshold.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace flawlens::fit {
namespace {

// Scores in the exponential tail: enough for a mean excess, a fifth of the
// data when there is more.
int TailCount(int n) { return std::min(n - 1, std::max(8, n / 5)); }

struct Tail {
  double u = 0;      // the (m + 1)-th largest score
  double beta = 0;   // mean excess, raised by one standard error
  double share = 0;  // estimated P(score > u) = m / (n + 1)
};

// `sorted`: ascending, n >= 2; `n_total`: how many scores `sorted` stands for
// (a summary keeps fewer points than scores).
Tail FitTail(const std::vector<float>& sorted, int n_total) {
  const int n = int(sorted.size());
  const int m = TailCount(n);
  Tail t;
  t.u = sorted[size_t(n - m - 1)];
  double sum = 0;
  for (int i = n - m; i < n; ++i) sum += sorted[size_t(i)] - t.u;
  const double spread = double(sorted.back()) - double(sorted.front());
  t.beta = std::max(sum / m, 1e-6 * std::max(1.0, spread)) * (1.0 + 1.0 / std::sqrt(double(m)));
  t.share = double(m) * double(n_total) / double(n) / double(n_total + 1);
  return t;
}

double TailQuantile(const Tail& t, double rate) { return t.u + t.beta * std::log(t.share / rate); }

}  // namespace

double SensitivityToRate(double sensitivity) {
  const double s = std::clamp(sensitivity, 0.0, 1.0);
  return std::clamp(kDefaultFalseAlarmRate * std::pow(10.0, 4.0 * (s - 0.5)), kMinFalseAlarmRate,
                    kMaxFalseAlarmRate);
}

Result<ThresholdEstimate> EstimateThreshold(std::vector<float> scores, double rate, int groups) {
  if (!(rate >= kMinFalseAlarmRate && rate <= kMaxFalseAlarmRate)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "false-alarm rate %g is outside [%g, %g]", rate, kMinFalseAlarmRate,
                     kMaxFalseAlarmRate);
  }
  for (float v : scores) {
    if (!std::isfinite(v)) {
      return MakeError(ErrorCode::kNonFinite, "a good image's score is not finite (%g)", double(v));
    }
  }
  const int n = int(scores.size());
  if (n < 2) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "a threshold needs the scores of at least 2 good images (got %d)", n);
  }
  std::sort(scores.begin(), scores.end());
  ThresholdEstimate e;
  e.rate = rate;
  e.scores = n;
  const Tail tail = FitTail(scores, n);
  const double k = std::ceil(double(n + 1) * (1.0 - rate));  // 1-based rank
  double t;
  if (k > n) {
    e.extrapolated = true;
    t = TailQuantile(tail, rate);
  } else {
    const double order = scores[size_t(k) - 1];
    t = rate >= tail.share ? order : std::max(order, TailQuantile(tail, rate));
  }
  // A tie at the threshold would flag those good images (score >= threshold):
  // step just above the order statistic it rests on.
  e.threshold = std::nextafter(float(t), INFINITY);

  const int need = int(std::ceil(1.0 / rate)) - 1;
  if (e.extrapolated) {
    char w[256];
    std::snprintf(w, sizeof(w),
                  "%d good images are too few to check a rate of %s: the threshold is "
                  "extrapolated from the highest scores. Add good images until there are at "
                  "least %d",
                  n, DescribeRate(rate).c_str(), need);
    e.warnings.push_back(w);
  }
  const int g = groups > 0 ? groups : n;
  if (g < 10) {
    char w[256];
    std::snprintf(w, sizeof(w),
                  "the good images come from only %d distinct parts or sessions: the threshold "
                  "can only be as good as their variety. Add photos of at least 10 different "
                  "good parts",
                  g);
    e.warnings.push_back(w);
  }
  return e;
}

std::vector<float> SummariseGoodScores(std::vector<float> scores) {
  std::sort(scores.begin(), scores.end());
  const size_t n = scores.size();
  if (n <= size_t(kMaxStoredGoodScores)) return scores;
  // Evenly spaced order statistics, always with the largest ones (the tail).
  std::vector<float> out(static_cast<size_t>(kMaxStoredGoodScores));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = scores[i * (n - 1) / (out.size() - 1)];
  }
  return out;
}

double EstimatedFalseAlarmRate(const Calibration& c, float threshold) {
  const std::vector<float>& s = c.good_scores;
  const int n = int(s.size());
  if (n < 2 || c.good_images < n) return std::nan("");
  const Tail tail = FitTail(s, c.good_images);
  // Fraction of the data at or above the threshold, as a new score would see
  // it (one more in the denominator).
  const auto above = s.end() - std::lower_bound(s.begin(), s.end(), threshold);
  const double empirical = double(above) * double(c.good_images) / double(n) /
                           double(c.good_images + 1);
  if (threshold <= tail.u) return empirical;
  const double modelled = tail.share * std::exp(-(double(threshold) - tail.u) / tail.beta);
  return std::max(empirical, modelled);
}

std::string DescribeRate(double rate) {
  char buf[96];
  if (!(rate > 0)) return "no good parts";
  if (rate < 1e-4) return "fewer than 1 in 10000 good parts";
  if (rate >= 0.095) {
    std::snprintf(buf, sizeof(buf), "about %.0f in 10 good parts", std::max(1.0, rate * 10));
    return buf;
  }
  // 1 in N with N rounded to two significant digits.
  double inv = 1.0 / rate;
  const double mag = std::pow(10.0, std::floor(std::log10(inv)) - 1);
  inv = std::round(inv / mag) * mag;
  std::snprintf(buf, sizeof(buf), "about 1 in %.0f good parts", inv);
  return buf;
}

Result<ScoreCalibrationResult> CalibrateScores(const std::vector<float>& good_raw_scores,
                                               double rate, int groups) {
  const size_t n = good_raw_scores.size();
  if (n < 2) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "calibration needs the scores of at least 2 good images (got %zu)", n);
  }
  double mean = 0, var = 0;
  for (float v : good_raw_scores) mean += v;
  mean /= double(n);
  for (float v : good_raw_scores) var += (v - mean) * (v - mean);
  double sd = std::sqrt(var / double(n - 1));
  if (!(sd > 1e-6)) sd = std::max(1e-3, std::fabs(mean) * 0.1);
  if (!std::isfinite(mean) || !std::isfinite(sd)) {
    return MakeError(ErrorCode::kNonFinite, "the good images' scores are not finite");
  }
  std::vector<float> norm(n);
  for (size_t i = 0; i < n; ++i) norm[i] = float((good_raw_scores[i] - mean) / sd);
  ScoreCalibrationResult r;
  FLAWLENS_ASSIGN_OR_RETURN(r.estimate, EstimateThreshold(norm, rate, groups));
  Calibration& cal = r.calibration;
  cal.offset = float(mean);
  cal.scale = float(sd);
  cal.threshold = r.estimate.threshold;
  cal.map_low = 0.0f;
  cal.map_high = std::max(1.0f, cal.threshold * 2.0f);
  cal.false_alarm_rate = float(rate);
  cal.good_scores = SummariseGoodScores(norm);
  cal.good_images = int(n);
  cal.good_groups = groups > 0 ? groups : int(n);
  return r;
}

}  // namespace flawlens::fit
