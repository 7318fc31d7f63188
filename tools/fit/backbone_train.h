// `flawlens train --backbone NAME|FILE`: an anomaly detector on the frozen
// features of a pretrained backbone (imported with `flawlens import-tfjs`).
// No LibTorch: features come from the inference core, the density and the
// calibration are fitted by src/fit/ (the same code the page runs to teach).
#pragma once

#include <string>

#include "core/status.h"

namespace flawlens::cli {

struct BackboneTrainOptions {
  std::string data;          // folder dataset (train/good[, val/...]) or flat folder of good images
  std::string out;           // model file to write
  std::string backbone;      // a backbone name (see `flawlens train --help`) or a .safetensors file
  int seed = 1;
  float sensitivity = 0.5f;  // 0..1: higher flags more images
  float holdout = 0.15f;     // fraction of good training images held out for calibration
  int threads = 0;           // inference threads (0 = all cores)
  std::string val_split;     // split used for the closing metrics ("" = val, else test)
  std::string name;          // model card name (default: folder name)
  bool quiet = false;
};

// Runs everything; progress to stderr, a summary to stdout.
Status RunBackboneTraining(const BackboneTrainOptions& options);

}  // namespace flawlens::cli
