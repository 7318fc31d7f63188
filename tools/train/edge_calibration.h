// Calibration of anomaly maps by distance to the image's edges, for the
// from-scratch trainer's fixed pixel scale (trainer_fit.cc). The per-cell
// calibration is src/fit/calibration.h (fit::FitCellCalibration).
#pragma once

#include <torch/torch.h>

#include <algorithm>

#include "model/model.h"

namespace flawlens::train {

// Calibration by distance to the image's edges on the map (fixed pixel
// scale, where images of different sizes put their borders at different
// cells; exported as the postprocessing's edge_mean / edge_std, FORMAT.md).
// Bucket of a cell: row * S + column of an S x S table, S = 2K; the row is
// its distance (cells) to the top edge, 0..K-1, in the upper half of the
// image, and S-1 minus its distance to the bottom edge in the lower half;
// the column likewise (left / right).
struct EdgeCalibration {
  int s = 0;
  torch::Tensor mean, std;  // S*S
};

// Bucket map (1 x h x w, int64; -1 off the image) of the cells rows y0..y0+ch,
// cols x0..x0+cw of an h x w map.
inline torch::Tensor EdgeBuckets(int h, int w, int y0, int x0, int ch, int cw, int s) {
  torch::Tensor b = torch::full({1, h, w}, -1, torch::kInt64);
  auto acc = b.accessor<int64_t, 3>();
  for (int y = 0; y < ch; ++y) {
    const int r = EdgeTableIndex(y, ch, s);
    for (int x = 0; x < cw; ++x) acc[0][y0 + y][x0 + x] = r * s + EdgeTableIndex(x, cw, s);
  }
  return b;
}

// Per-bucket mean and std of `maps` (N x 1 x h x w) over the cells with a
// bucket; buckets with fewer than 30 cells take the pooled values; the std is
// floored at half its median and shrunk towards the pooled std like the
// per-cell calibration (fit::FitCellCalibration).
inline EdgeCalibration FitEdgeCalibration(const torch::Tensor& maps, const torch::Tensor& buckets,
                                          int s, float shrink) {
  torch::Tensor on = buckets >= 0;
  torch::Tensor idx = buckets.masked_select(on), v = maps.masked_select(on).to(torch::kFloat64);
  torch::Tensor cnt = torch::zeros({s * s}, torch::kFloat64).index_add_(0, idx, torch::ones_like(v));
  torch::Tensor sum = torch::zeros({s * s}, torch::kFloat64).index_add_(0, idx, v);
  torch::Tensor sq = torch::zeros({s * s}, torch::kFloat64).index_add_(0, idx, v * v);
  const double all_mean = v.mean().item<double>(), all_sd = std::max(1e-6, v.std().item<double>());
  torch::Tensor enough = cnt >= 30;
  torch::Tensor mean = torch::where(enough, sum / cnt.clamp_min(1), torch::full_like(sum, all_mean));
  torch::Tensor var = (sq / cnt.clamp_min(1) - mean * mean).clamp_min(0);
  torch::Tensor sd = torch::where(enough, var.sqrt(), torch::full_like(sum, all_sd));
  const double floor = std::max(1e-3, 0.5 * sd.median().item<double>());
  sd = sd.clamp_min(floor);
  EdgeCalibration e;
  e.s = s;
  e.mean = mean.to(torch::kFloat32);
  e.std = torch::sqrt((1 - shrink) * sd * sd + shrink * all_sd * all_sd).to(torch::kFloat32);
  return e;
}

inline torch::Tensor ApplyEdgeCalibration(const torch::Tensor& maps, const torch::Tensor& buckets,
                                          const EdgeCalibration& e) {
  torch::Tensor idx = buckets.clamp_min(0);
  return (maps - e.mean.index({idx})) / e.std.index({idx});
}

}  // namespace flawlens::train
