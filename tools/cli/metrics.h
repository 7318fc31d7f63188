// Evaluation metrics for anomaly detection (higher score = more anomalous;
// label true = defective / defect pixel).
//
// Image level (exact):
//   - Auroc: Mann-Whitney U with mid-ranks, i.e. the probability that a random
//     defective image scores above a random good one, ties counting 0.5.
//   - RocCurve: one point per distinct score, from (0,0) to (1,1).
//   - F1AtThreshold / BestF1: predicted defective iff score >= threshold.
//
// Pixel level (PixelAccumulator, memory-efficient):
//   Pixels are counted into bins instead of being stored. The bin edges are
//   the distinct values of a sample (the anomaly maps at their own resolution;
//   upsampled pixels are bilinear mixes of those, so they lie inside the range)
//   reduced to at most `max_bins` quantiles. A threshold at a bin edge is exact
//   (counts of pixels >= edge are exact); pixels that share a bin count as tied
//   (0.5) in the AUROC. AurocTieBound() returns the largest possible error this
//   causes: sum_b pos_b * neg_b / (2 P N). When the sample has <= max_bins
//   distinct values and pixels take only those values, the result is exact.
//   Memory: 3 arrays of max_bins (default 65536) numbers, whatever the data size.
//
//   - Pixel AUROC: all pixels of all added images (good images: empty mask).
//   - PRO (MVTec AD, Bergmann et al. 2021): for each threshold, the mean over
//     all ground-truth regions (8-connected components of the masks, over all
//     images) of the fraction of the region at or above the threshold, plotted
//     against the false-positive rate over all defect-free pixels; the area
//     under this curve from FPR 0 to max_fpr (default 0.3, linear interpolation
//     at the end point) divided by max_fpr. 1.0 = perfect.
//     Computed exactly at bin edges with a weighted histogram: a region pixel
//     adds 1/|region| to its bin, so PRO(t) = (sum of weights >= t) / regions.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "fit/calibration.h"
#include "flawlens/detector.h"
#include "model/model.h"

namespace flawlens::cli {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct RocPoint {
  double fpr = 0, tpr = 0;
  double threshold = 0;  // predicted positive iff score >= threshold (+inf for (0,0))
};

// NaN when either class is empty or sizes differ.
double Auroc(const std::vector<float>& scores, const std::vector<bool>& labels);
// Fraction of the positives caught at the strictest threshold that flags at
// most `false_alarms` of the negatives (floor(rate * negatives) of them; a
// positive is caught when it scores above every negative left unflagged).
// NaN without negatives or positives.
double RecallAtFalseAlarms(const std::vector<float>& scores, const std::vector<bool>& labels,
                           double false_alarms);
std::vector<RocPoint> RocCurve(const std::vector<float>& scores, const std::vector<bool>& labels);

struct Interval {
  double lo = kNaN, hi = kNaN;
};
// Percentile bootstrap interval of Auroc: good and defective images are
// resampled separately, with replacement, `resamples` times, and the
// (1-level)/2 and (1+level)/2 quantiles of the resampled AUROCs are returned.
// Images with the same `groups` entry (e.g. captures of one part) are drawn
// together; empty `groups` = every image on its own. Deterministic for a
// seed. NaN when either class is empty or the sizes differ.
Interval AurocBootstrap(const std::vector<float>& scores, const std::vector<bool>& labels,
                        const std::vector<std::string>& groups, double level = 0.95,
                        int resamples = 2000, uint32_t seed = 1);
// The legend of eval's interval (table and report); `groups_file` is
// `flawlens eval --groups` (empty: the capture-tag rule of GroupKey).
std::string AurocIntervalNote(const std::string& groups_file);

struct F1Score {
  double f1 = 0, precision = 0, recall = 0;
  double threshold = 0;
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
};
// precision = tp/(tp+fp) (0 when nothing predicted), recall = tp/(tp+fn),
// f1 = 2tp/(2tp+fp+fn) (0 when there are no positives and none predicted).
F1Score F1AtThreshold(const std::vector<float>& scores, const std::vector<bool>& labels,
                      double threshold);
// The threshold (one of the scores) with the highest F1; among equal F1 the
// highest threshold. Tied scores are one threshold (all of them flagged or
// none). Without defective images no threshold has F1 > 0: threshold +inf,
// f1 0. Used by `flawlens eval` and stored by `flawlens train` as the
// model's f1_threshold.
F1Score BestF1(const std::vector<float>& scores, const std::vector<bool>& labels);

// The score calibration (model/FORMAT.md section 7) from the raw scores of
// good images, shared by `flawlens train` (held-out images) and `flawlens
// calibrate`: offset = mean, scale = standard deviation (n - 1; a spread of
// at most 1e-6 falls back to max(1e-3, 0.1 |mean|)), threshold = 6 (1 -
// sensitivity) standard deviations (sensitivity clamped to [0, 1]; 0.5 -> 3),
// heatmap range [0, max(1, 2 threshold)]. At least one score. One rule for
// the trainer, `calibrate` and the backbone fit (the page's too): src/fit's.
using fit::ScoreCalibration;

// Trapezoid area under y(x) for x in [0, x_max] (points sorted by x, linear
// interpolation at x_max), not normalised.
double AreaUnderCurve(const std::vector<double>& x, const std::vector<double>& y, double x_max);

// 8-connected components of mask (nonzero = foreground). labels[i] = 0 for
// background, 1..n for components. Returns n.
int LabelComponents(const uint8_t* mask, int width, int height, std::vector<int32_t>* labels);

// Bilinear upsampling of a detection's map onto the pixels of a width x height
// image, following map_rect (map cell centres; pixels outside the rectangle
// take the nearest edge value).
void UpsampleMap(const float* map, int map_width, int map_height, const RectF& map_rect,
                 int width, int height, std::vector<float>* out);

class PixelAccumulator {
 public:
  // Edges from a sample of values (see above). An empty sample gives one bin.
  static std::vector<float> EdgesFromSample(std::vector<float> sample, int max_bins = 65536);

  explicit PixelAccumulator(std::vector<float> edges);

  // One image at full resolution: scores[width*height]; mask nonzero = defect
  // (nullptr = all defect-free, e.g. a good image).
  void Add(const float* scores, const uint8_t* mask, int width, int height);

  // Adds the counts of `other`, which must have the same edges (per-thread
  // accumulators). Returns false (and adds nothing) when the edges differ.
  bool Merge(const PixelAccumulator& other);

  int64_t positives() const { return positives_; }
  int64_t negatives() const { return negatives_; }
  int64_t regions() const { return regions_; }

  double Auroc() const;          // NaN without positives or negatives
  double AurocTieBound() const;  // max |error| of Auroc() from binning
  double Pro(double max_fpr = 0.3) const;  // NaN without regions or negatives
  std::vector<RocPoint> Roc() const;       // one point per bin edge

 private:
  int Bin(float v) const;
  std::vector<float> edges_;
  std::vector<uint64_t> pos_, neg_;
  std::vector<double> region_weight_;
  int64_t positives_ = 0, negatives_ = 0, regions_ = 0;
  std::vector<int32_t> labels_;  // scratch
  std::vector<int64_t> sizes_;   // scratch
};

}  // namespace flawlens::cli
