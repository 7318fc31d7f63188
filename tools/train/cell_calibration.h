// Per-cell calibration of anomaly maps on held-out good images, shared by the
// trainer (trainer.cc, exported as the postprocessing's cell_mean / cell_std)
// and its research hook (research.cc).
#pragma once

#include <torch/torch.h>

#include <algorithm>

namespace flawlens::train {

struct CellCalibration {
  torch::Tensor mean, std;  // h x w
};

// Per-cell mean and std of `maps` (N x 1 x h x w), optionally mirror-
// symmetrised (the four flips, when training used flips), smoothed by a
// replicate-padded 3x3 box against the noise of few images, the std floored
// at half its median and shrunk towards one global std (0 = per cell,
// 1 = global; METHOD.md).
inline CellCalibration FitCellCalibration(const torch::Tensor& maps_in, bool mirror, float shrink) {
  torch::Tensor maps = maps_in;
  if (mirror) maps = torch::cat({maps, maps.flip({3}), maps.flip({2}), maps.flip({2, 3})});
  auto smooth = [](const torch::Tensor& t) {
    torch::Tensor p = torch::replication_pad2d(t.view({1, 1, t.size(0), t.size(1)}), {1, 1, 1, 1});
    return torch::avg_pool2d(p, 3, 1)[0][0];
  };
  CellCalibration cc;
  cc.mean = smooth(maps.mean(0)[0]);
  torch::Tensor sd = smooth(maps.std(0)[0]);
  float floor = std::max(1e-3f, 0.5f * sd.median().item<float>());
  sd = sd.clamp_min(floor);
  cc.std = torch::sqrt((1 - shrink) * sd * sd + shrink * (sd * sd).mean());
  return cc;
}

inline torch::Tensor ApplyCellCalibration(const torch::Tensor& maps, const CellCalibration& cc) {
  const int64_t h = cc.mean.size(0), w = cc.mean.size(1);
  return (maps - cc.mean.view({1, 1, h, w})) / cc.std.view({1, 1, h, w});
}

}  // namespace flawlens::train
