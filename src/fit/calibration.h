// Map and score calibration on held-out good images, in plain C++: `flawlens
// train` (the backbone fit and the from-scratch trainer) and the page, which
// calibrates a model it teaches, run this same code.
#pragma once

#include <vector>

#include "core/status.h"
#include "image/preprocess.h"  // RectI
#include "model/model.h"

namespace flawlens::fit {

struct CellCalibration {
  int h = 0, w = 0;
  std::vector<float> mean, std;  // h x w, row-major
};

// Per-cell mean and standard deviation (n - 1) of `n` maps of h x w (stored
// one after the other), optionally mirror-symmetrised (the maps and their
// three flips), smoothed by a replicate-padded 3x3 box against the noise of
// few images; the std is floored at half its (lower) median, at least 1e-3,
// and shrunk towards one global std: sqrt((1 - shrink) sd^2 + shrink
// mean(sd^2)) (0 = per cell, 1 = global). Needs n >= 2 maps.
// `content` (n rectangles of cells, or null = every cell; not with mirror):
// only the cells of map k inside content[k] count (the image, not its
// padding); a cell inside fewer than 2 takes the mean and std of all counted
// cells.
Result<CellCalibration> FitCellCalibration(const float* maps, int n, int h, int w, bool mirror,
                                           float shrink, const RectI* content = nullptr);

// map = (map - mean) / std, in place (one h x w map).
void ApplyCellCalibration(const CellCalibration& cc, float* map);

// Calibration by distance to the image's edges (model/FORMAT.md section 6,
// edge_mean / edge_std): for padded inputs, where photos of other shapes put
// their borders on other cells. Table s x s (s = 2K), row-major.
struct EdgeCalibration {
  int s = 0;
  std::vector<float> mean, std;
};

// Per table entry, the mean and std (n - 1) of the cells of `n` maps of
// h x w inside content[k] (the cell's entry: EdgeTableIndex of its row and
// column within that rectangle). Entries with fewer than 30 cells take the
// values of all; the std is floored at half its median (at least 1e-3) and
// shrunk towards the pooled std as FitCellCalibration's. s even in [2, 128].
Result<EdgeCalibration> FitEdgeCalibration(const float* maps, int n, int h, int w,
                                           const RectI* content, int s, float shrink);

// The calibration on the cells of one h x w map (w wide) inside `content`,
// in place: what the detector does on the map it keeps.
void ApplyEdgeCalibration(const EdgeCalibration& e, float* map, int w, const RectI& content);

// The score calibration (model/FORMAT.md section 7) from raw scores of good
// images the model did not fit: fit::CalibrateScores (fit/threshold.h) at the
// false-alarm rate of the sensitivity (SensitivityToRate: 0.5 -> the default
// rate). With fewer than 2 finite scores: offset = the score, threshold 3.
Calibration ScoreCalibration(const std::vector<float>& good_raw_scores, float sensitivity);

// The detector's map blur, in place (reflect-101 borders); sigma <= 0 or a
// 1-cell map: unchanged.
void BlurMap(float* map, int w, int h, float sigma);

}  // namespace flawlens::fit
