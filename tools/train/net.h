// The flawlens detection network (LibTorch side) and its export to the core
// engine's graph (src/nn/graph.h op set).
//
// Two branches share one small encoder (docs/METHOD.md, "The method"):
//   seg:     a light U-Net decoder trained to segment synthetic anomalies;
//            one logit per map cell (1/4 of the input resolution).
//   density: a Gaussian model of the encoder/decoder features of good
//            images, exported as a whitening 1x1 conv + reduce sum_squares
//            (squared Mahalanobis distance per cell).
// Both are standardised on good images and summed with fixed weights by a 1x1
// conv: the network output is one map (H/4 x W/4 x 1) that the postprocessing
// blurs (the detector's map blur) and calibrates per cell.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/model.h"

namespace flawlens::train {

struct NetConfig {
  int in_channels = 1;
  int width = 16;            // channels of the first stage (x2, x4 deeper)
  bool density = true;       // add the Gaussian density branch
  float seg_weight = 1.0f;   // weight of the standardised seg map in the sum
  float density_weight = 1.0f;
  // Gaussian smoothing of the output map (cells). Not part of the network
  // graph: the model's postprocess blur_sigma, the detector's map blur
  // (fit::BlurMap), which the trainer applies to its maps the same way.
  float map_blur_sigma = 1.0f;
  // > 0: density = squared distance to the nearest of `bank` whitened feature
  // vectors (a k-centre coreset of good features) instead of the Gaussian.
  int bank = 0;
  // Add a second Gaussian density on the stem features (1/2 resolution,
  // `width` channels), max-pooled 2x2 onto the map: finer than the main
  // density (small blowholes and cracks).
  bool fine_density = false;
  // > 0: add an image-level term to every cell of the map: the squared
  // Mahalanobis distance of the image's mean feature vector (per-channel means
  // of the stem, 1/4, decoder and 1/8 features) to a Gaussian of good images,
  // standardised on held-out good images, times this weight. It raises the
  // whole map of an image whose texture as a whole is atypical (a band of
  // different grinding, a different surface finish) that no cell shows alone.
  float global_weight = 0.0f;
};

// Conv (no bias) + BatchNorm + activation; folded into one conv2d at export.
struct ConvBnImpl : torch::nn::Module {
  ConvBnImpl(int in, int out, int kernel, int stride, int dilation, bool relu);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  int kernel, stride, dilation, pad;
  bool relu;
};
TORCH_MODULE(ConvBn);

struct NetOutputs {
  torch::Tensor seg;       // N x 1 x H/4 x W/4 logits
  torch::Tensor features;  // N x F x H/4 x W/4 (density features)
  torch::Tensor fine;      // N x w x H/2 x W/2 (fine density features)
  torch::Tensor f3;        // N x 4w x H/8 x W/8
};

struct FlawNetImpl : torch::nn::Module {
  explicit FlawNetImpl(const NetConfig& config);

  // Training forward: seg logits + density features.
  NetOutputs forward(const torch::Tensor& x);
  // Exactly what the exported graph computes (eval mode): N x 1 x H/4 x W/4.
  torch::Tensor forward_map(const torch::Tensor& x);
  // Standardised branch maps before summing (for analysis / weighting).
  torch::Tensor density_map(const torch::Tensor& features);  // N x 1 x h x w
  torch::Tensor fine_map(const torch::Tensor& fine);          // N x 1 x h x w
  // Image descriptor of the global term: N x global_channels() (means over
  // the image of the stem, 1/4, decoder and 1/8 features, in that order).
  torch::Tensor global_descriptor(const NetOutputs& o);
  // Squared Mahalanobis distance of descriptors to the fitted Gaussian: N.
  torch::Tensor global_distance(const torch::Tensor& descriptor);
  // The output map from the branch maps (an undefined or unfitted branch is
  // left out; `glob`: N raw global distances), before the map blur.
  torch::Tensor combine_maps(const torch::Tensor& seg, const torch::Tensor& dens,
                             const torch::Tensor& fine = {}, const torch::Tensor& glob = {});

  int feature_channels() const;
  int global_channels() const;

  NetConfig config;
  ConvBn stem{nullptr}, e1{nullptr}, down2{nullptr}, e2{nullptr}, down3{nullptr},
      e3a{nullptr}, e3b{nullptr}, d2{nullptr}, d2b{nullptr};
  torch::nn::Conv2d head{nullptr};
  // Density branch (buffers, set by FitDensity): whitening W [F][F], bias [F].
  torch::Tensor dens_w, dens_b;
  torch::Tensor bank;  // [bank][F] whitened feature vectors (config.bank > 0)
  // Fine density (config.fine_density): whitening [w][w], bias [w].
  torch::Tensor fine_w, fine_b;
  // Standardisation of the maps on good images: z = (m - mean) / std.
  torch::Tensor combine;  // [6]: seg, dens, fine (mean, std) pairs
  // Global term (config.global_weight > 0): whitening [G][G], bias [G], and
  // the held-out good images' distance mean and std.
  torch::Tensor glob_w, glob_b, glob_stats;
  bool density_fitted = false;
  bool fine_fitted = false;
  bool global_fitted = false;
};
TORCH_MODULE(FlawNet);

// Export the (eval-mode) network as a flawlens graph: fills graph_json and
// tensors of `spec`. Input h x w must be multiples of 8.
void ExportNetwork(FlawNet& net, int input_h, int input_w, ModelSpec* spec);

// Multiply-accumulates of the exported graph for an input of h x w.
int64_t CountMacs(FlawNet& net, int input_h, int input_w);

}  // namespace flawlens::train
