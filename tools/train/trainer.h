// `flawlens train --from-scratch`: learn an anomaly detector from good images only
// (LibTorch, CPU, from scratch), calibrate it on held-out good images and
// write a flawlens model file. The method and the evidence for its defaults
// are in docs/METHOD.md.
#pragma once

#include <string>
#include <vector>

#include "cli/metrics.h"
#include "core/status.h"
#include "train/synth_anomaly.h"

namespace flawlens::train {

struct TrainOptions {
  std::string data;          // folder dataset or flat folder of good images
  std::string out;           // model file to write
  double minutes = 10;       // total wall-time budget (load + train + calibrate)
  int steps = 0;             // > 0: train exactly this many steps instead of for a time
                             // budget: the same seed, steps and threads give the same model
                             // bit for bit (threads 0 then means 1: float sums depend on it)
  int seed = 1;
  // Network input: `size` is the side of a square of the same area; the
  // aspect ratio follows the median of the training images (multiples of 8).
  int size = 256;
  int input_w = 0, input_h = 0;  // explicit input size (overrides size)
  // How images become the network input: "stretch" (resize to the input
  // size), "scale" (fixed pixel scale, aspect kept, mirror-padded canvas,
  // edge calibration: src/image/preprocess.h) or "auto" (scale when the
  // training images differ in size, else stretch). Stretch is the default:
  // on magnetic tile (images 103-632 px wide) it measured better than scale
  // (docs/METHOD.md, "Input geometry").
  std::string fit = "stretch";
  float pixel_scale = 0;     // fit scale: resize factor (0 = median image area -> size^2)
  std::string norm = "lcn";  // "lcn" (local contrast) or "meanstd"
  float lcn_sigma = 8.0f;    // in network-input pixels
  float lcn_eps = 1e-3f;
  int channels = 0;          // 0 = 1 if all training images are gray, else 3
  int crop = 96;             // training crop side (<= input side)
  int batch = 12;
  float lr = 2e-3f;
  int width = 12;            // first-stage channels
  bool density = true;
  int bank = 0;              // > 0: nearest-neighbour bank of this size
  bool fine_density = false; // add a Gaussian density of the 1/2-resolution stem features
  float global_weight = 0.0f; // > 0: image-level term added to the map (net.h)
  float seg_weight = 0.35f;
  float density_weight = 1.0f;
  float map_blur = 1.0f;     // Gaussian smoothing of the output map (cells)
  std::string reduce = "max";  // max | topk_mean | mean
  float topk = 0.01f;
  bool cell_calibration = true;
  float cell_std_shrink = 0.5f;  // 0..1 (1 = global std); < 0: chosen by simulation
  float sensitivity = 0.5f;  // 0..1: higher flags more images
  float holdout = 0.15f;     // fraction of good training images held out
  float anomaly_prob = 0.6f; // fraction of training crops with synthetic anomalies
  bool flips = true;         // flip augmentation (and mirror-symmetric calibration)
  double val_every = 180;    // seconds between validation AUROC reports
  int threads = 0;           // LibTorch threads (plus one data thread); 0 = auto:
                             // 1 or more, whichever steps faster (re-timed every minute);
                             // 1 when steps > 0
  std::string val_split;     // split used for validation metrics ("" = val, else test)
  std::string name;          // model card name (default: folder name)
  bool quiet = false;
  SynthConfig synth;
};

// Runs everything (the phases in order: trainer.cc, at the end of the file);
// prints progress to stderr and a summary to stdout.
Status RunTraining(const TrainOptions& options);

// Area under the ROC curve (cli/metrics.h: ties count half; NaN with one class).
using cli::Auroc;
using cli::ScoreCalibration;

}  // namespace flawlens::train
