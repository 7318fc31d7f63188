// `flawlens adapt` (and `flawlens train --adapt MINUTES`): fine-tune the last
// blocks of a pretrained backbone on the user's good images, natively with
// LibTorch, and write the result as a backbone model file of the same graph
// (new weights only), so that the fitting path (tools/train/backbone_fit.h)
// and the page run it unchanged.
//
// Objective (docs/METHOD-adapt.md has the variants and their numbers): good
// images get synthetic anomalies (train/synth_anomaly.h); the backbone's
// features are trained so that a small head segments them (`seg`), and/or so
// that good cells move towards their position's mean feature while anomalous
// ones move away (`compact`); a distillation term keeps good cells near the
// frozen backbone's features so the features do not collapse.
#pragma once

#include <string>

#include "core/status.h"

namespace flawlens::adapt {

struct AdaptOptions {
  std::string data;                  // folder dataset (train/good) or flat folder of good images
  std::string backbone = "centernet";  // name or .safetensors file (train::ResolveBackbone)
  std::string out;                   // adapted backbone file to write
  double minutes = 5;                // time budget of the training loop
  int steps = 0;                     // > 0: exactly this many steps (bit-for-bit repeatable
                                     // with the same seed), the time budget is then ignored
  int seed = 1;
  int threads = 1;                   // LibTorch threads (1: see METHOD-adapt.md)
  // Nodes from this one on train (a node name); "" = the last
  // `train_fraction` of the conv2d nodes before the output.
  std::string train_from;
  float train_fraction = 0.5f;       // centernet: from expanded_conv_6/expand (the stride-8 tap)
  int batch = 6;
  float lr = 1e-3f;                  // backbone (Adam, cosine); the head takes 10x
  int crop = 0;                      // > 0: train on random crops of this side (multiple of the
                                     // feature stride); 0 = whole images
  float anomaly_prob = 0.6f;         // fraction of images with synthetic anomalies
  float seg_weight = 1.0f;           // segmentation head on the features
  int head_hidden = 0;               // 0: linear (1x1 conv) head; else one hidden 1x1 layer
  float distill_weight = 1.0f;       // good cells: squared distance to the frozen features
  float compact_weight = 1.0f;       // good cells to the position mean, anomalous away
  float margin = 4.0f;               // compact: anomalous cells' distance floor (per channel)
  // Weight of the band anomaly (one side of the image re-textured from
  // another good image, train/synth_anomaly.h), which the trainer leaves off.
  float synth_band = 0.0f;
  bool flips = true;
  bool quiet = false;
};

struct AdaptReport {
  int steps = 0;
  double seconds = 0;
  int images = 0;
  int64_t trainable = 0;             // trained parameters of the backbone
  std::string first_trained_node;
  float last_loss = 0;
};

// Runs the fine-tuning and writes options.out. Progress on stderr.
Status RunAdaptation(const AdaptOptions& options, AdaptReport* report = nullptr);

}  // namespace flawlens::adapt
