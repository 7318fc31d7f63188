// Synthetic anomalies painted onto good images, so that the segmentation
// branch can learn "what is not normal" without defective examples.
//
// Images are float HWC in pixel units (0..255) at the network resolution.
// Every generator writes into `img` and ORs its footprint into `mask` (H x W,
// 0/1). Kinds (docs/METHOD.md, "Training objectives", for which helped):
//   patch   - a Perlin-shaped piece of another good image (or of this one at
//             another place), optionally rescaled/rotated/gain-changed, with a
//             feathered edge (NSA / CutPaste-like)
//   region  - a large smooth Perlin region with changed brightness/contrast
//             (uneven lighting / discolouration)
//   spot    - small dark or bright soft ellipses (holes, dirt)
//   crack   - a thin dark or bright polyline
//   edge    - a blob on the image border replaced by a dark/bright level
//             (broken edge / chipped corner)
//   noise   - a Perlin region with added grain (rough texture)
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "image/preprocess.h"

namespace flawlens::train {

struct FloatImage {
  int h = 0, w = 0, c = 0;
  std::vector<float> data;  // HWC, 0..255
  float at(int y, int x, int ch) const { return data[(size_t(y) * w + x) * c + ch]; }
  float& at(int y, int x, int ch) { return data[(size_t(y) * w + x) * c + ch]; }
};

struct SynthConfig {
  // Relative frequencies of the kinds (0 disables one).
  float patch = 3, region = 1.5f, spot = 1, crack = 0.5f, edge = 0.7f, noise = 0.7f;
  // A band from one side of the crop to a wavy line across it, re-textured
  // from another good image (mean and contrast matched): a region that is
  // only abnormal relative to the rest of the same part. Off by default.
  float band = 0;
  int max_anomalies = 2;
  float min_change = 4.0f;  // pixels changed less than this are not labelled
};

// The preprocessing that gives these images: resized to w x h, pixels 0..255,
// no normalisation.
PreprocessConfig RawResizeConfig(int w, int h, int channels);

// Paint 1..max_anomalies anomalies; `pool` supplies foreign texture (may be
// empty). `mask` gets 1 where the image was visibly changed.
void PaintAnomalies(FloatImage* img, std::vector<float>* mask, const std::vector<FloatImage>& pool,
                    const SynthConfig& config, std::mt19937* rng);

// Smooth random field in [0, 1] (value noise, `octaves` octaves, base grid of
// `cells` cells along the longer side).
std::vector<float> PerlinField(int h, int w, int cells, int octaves, std::mt19937* rng);

}  // namespace flawlens::train
