// Research hook of `flawlens train` (FLAWLENS_TRAIN_RESEARCH=1): after
// training, compares alternative density branches and map combinations on
// the validation split and prints one line per variant. Used to choose the
// method documented in METHOD.md; not part of the exported model.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "train/net.h"

namespace flawlens::train {

struct ResearchData {
  const std::vector<torch::Tensor>* fit_x;   // good images the densities are fitted on
  const std::vector<torch::Tensor>* hold_x;  // held-out good images (calibration)
  const std::vector<torch::Tensor>* val_x;
  const std::vector<bool>* defective;
  const std::vector<std::string>* types;
  const std::vector<torch::Tensor>* masks;  // map resolution, undefined if none
  int map_h, map_w;
  // The training images that are not in fit_x (fit_x is an evenly spaced
  // subset of at most 200): =calib adds them to the calibration images,
  // =fitall to the fit images.
  const std::vector<torch::Tensor>* rest_x = nullptr;
};

void RunResearch(FlawNet& net, const ResearchData& data);

// Image AUROC of the density branch alone (Gaussian of the 1/4 features, cell
// calibration, max) on the current weights: the learning curve of the features.
double DensityCurvePoint(FlawNet& net, const ResearchData& data);

}  // namespace flawlens::train
