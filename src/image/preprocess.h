// Image preprocessing: the one implementation shared by training (tools/),
// the CLI and the browser (wasm). Pixels -> NHWC float tensor the network
// reads, plus the geometry that maps the network's anomaly map back onto the
// input image.
//
// Pipeline (each step optional except the last two):
//   1. region of interest (fraction of the image, from the user / page)
//   2. resize the ROI to resize_w x resize_h (area averaging when shrinking,
//      bilinear when enlarging: no nearest-neighbour aliasing)
//   3. crop a rectangle of the resized image (model config)
//   4. channel conversion (gray <-> RGB; RGBA drops alpha)
//   5. normalisation: x = (pixel * scale - mean[c]) / std[c], or local contrast
//      normalisation (lighting-robust) followed by the same affine step.
//
// The seed's preprocessing ("resize to 64x64, crop rows/cols 16..48, divide by
// 255") is: resize 64x64, crop {16,16,32,32}, scale 1/255, mean 0, std 1.
//
// Fixed pixel scale (pixel_scale > 0) replaces steps 2-3: the ROI is resized
// by that factor, keeping its aspect ratio and so the size of texture and
// defects in pixels, and centred on a resize_w x resize_h canvas. A larger
// result is cropped to the canvas (centred); a smaller one is normalised on
// its own and then mirrored (half-sample symmetric, repeated as needed) into
// the rest of the canvas. PreprocessContent tells where the image is, so the
// detector scores only the map cells over it.
//
// Keep aspect (keep_aspect): as the fixed pixel scale, but the factor is per
// image, the largest that fits the ROI inside resize_w x resize_h (letterbox):
// the whole ROI is seen, undistorted, and the rest of the canvas is mirror
// padding. Photos of many shapes keep their texture's aspect.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "flawlens/image.h"  // ImageView, Image, RectF, PixelFormat, DecodeImage

namespace flawlens {

struct RectI {  // integer rectangle (crop, content on the network input)
  int x = 0, y = 0, w = 0, h = 0;
};

enum class NormMode {
  kMeanStd,        // (v*scale - mean) / std
  kLocalContrast,  // v*scale, then (v - blur(v)) / sqrt(blur((v - blur v)^2) + eps), then mean/std
};

struct PreprocessConfig {
  // 0 = network input size (no separate crop): the model loader fills these
  // in from the graph's input; Validate() and Preprocess() need them set.
  int resize_w = 0, resize_h = 0;
  RectI crop;                      // w == 0 -> no crop (whole resized image)
  int channels = 3;                // network input channels: 1 or 3
  float scale = 1.0f / 255.0f;
  float mean[3] = {0, 0, 0};
  float std[3] = {1, 1, 1};
  NormMode norm = NormMode::kMeanStd;
  float lcn_sigma = 8.0f;          // in resized pixels (kLocalContrast), 0 < sigma <= 64;
                                   // Gaussian radius ceil(3 sigma), half-sample
                                   // symmetric ("reflect") borders on the crop
  float lcn_eps = 1e-2f;
  float pixel_scale = 0.0f;        // > 0: fixed-scale mode (above); no crop allowed
  bool keep_aspect = false;        // fit inside the canvas (above); no crop, no pixel_scale

  // Network input size implied by the config.
  int out_w() const { return crop.w > 0 ? crop.w : resize_w; }
  int out_h() const { return crop.h > 0 ? crop.h : resize_h; }

  // The map covers padding as well as the image (fixed scale, keep aspect):
  // only the cells over the image are scored.
  bool padded() const { return pixel_scale > 0.0f || keep_aspect; }
  // "stretch", "keep_aspect" or "pixel_scale" (the model file's name).
  const char* geometry_name() const {
    return keep_aspect ? "keep_aspect" : pixel_scale > 0.0f ? "pixel_scale" : "stretch";
  }

  Status Validate() const;
};

// Reusable buffers so that steady-state preprocessing allocates nothing.
struct PreprocessScratch {
  std::vector<float> a, b, c, d;  // d: the image part before mirror padding (pixel_scale)
  std::vector<int> taps;  // resampling tap indices (added by image/preprocess.cc)
};

// Runs the pipeline into `out` (out_h * out_w * channels floats, NHWC).
// `roi` is in input pixels; w == 0 means the whole image. `covered` receives
// the rectangle of the input image (pixels) that the network input shows, so
// an anomaly map can be drawn back onto the image.
// `scratch` may be null (then every call allocates); `covered` may be null.
// Errors: kInvalidArgument (null/empty image, bad stride, empty ROI, bad
// config), kLimitExceeded (image larger than core/limits.h allows).
Status Preprocess(const ImageView& image, const PreprocessConfig& config, const RectF& roi,
                  float* out, PreprocessScratch* scratch, RectF* covered);

// ---- helpers (same checks and geometry as Preprocess; ValidateImageView is in
// flawlens/image.h) ----------------------------------------------------------

// `roi` (w == 0: whole image) clipped to the image; kInvalidArgument if it is
// not finite or empty after clipping.
Result<RectF> ClipRoi(int image_w, int image_h, const RectF& roi);

// The `covered` rectangle Preprocess would report, without running it.
Result<RectF> PreprocessCovered(const PreprocessConfig& config, int image_w, int image_h,
                                const RectF& roi);

// Where the image lies on the network input (network-input pixels): the whole
// input, except with a fixed scale or keep_aspect, where the rest is mirror
// padding.
Result<RectI> PreprocessContent(const PreprocessConfig& config, int image_w, int image_h,
                                const RectF& roi);

// The map cells (of a map_w x map_h map over a net_w x net_h input) whose
// centres lie on `content`; never empty (at least the cell under the
// content's centre).
RectI ContentCells(const RectI& content, int net_w, int net_h, int map_w, int map_h);

// Half-sample symmetric index of u into [0, n), repeated with period 2n
// (d c b a | a b c d | d c b a): the fixed-scale padding, and the trainer's
// crops of images smaller than the crop.
inline int MirrorIndex(int u, int n) {
  const int period = 2 * n;
  u %= period;
  if (u < 0) u += period;
  return u < n ? u : period - 1 - u;
}

}  // namespace flawlens
