// Separable blur of a float plane with a symmetric kernel (exact: every tap is
// computed, no recursive / box approximation), SIMD128 across columns. Used by
// the local contrast normalisation (image/preprocess.cc) and the anomaly map
// blur (detect/detector.cc).
#pragma once

#include <cstddef>
#include <vector>

namespace flawlens {

enum class BlurBorder {
  kReflect,     // half-sample symmetric: d c b a | a b c d | d c b a
  kReflect101,  // whole-sample symmetric, edge not repeated: d c b | a b c d | c b a
};

// Normalised Gaussian kernel of radius max(1, ceil(3 sigma)), sigma > 0: the
// anomaly map's blur (the detector, the fit, the ONNX export all use this one).
std::vector<float> GaussianKernel(float sigma);

// Index of sample j (any integer) of an n-sample axis (n >= 1) under `border`.
int BlurBorderIndex(int j, int n, BlurBorder border);

// Floats of scratch GaussianBlurPlane needs for a w x h x channels image and
// radius r.
inline size_t BlurScratchFloats(int w, int h, int channels, int r) {
  return (static_cast<size_t>(w) * h + static_cast<size_t>(w) + 2 * static_cast<size_t>(r)) *
             channels + 4;
}

// Blurs each channel of an interleaved (HWC) w x h x channels float image:
// out = blur_y(blur_x(in)) with kern[0 .. 2r] (kern[r + d] == kern[r - d] is
// assumed: the two taps at distance d are added before the one multiply).
// in == out is allowed. scratch: BlurScratchFloats(w, h, channels, r) floats;
// rows: 2r + 1 ints. Allocates nothing.
void GaussianBlurPlane(const float* in, float* out, int w, int h, int channels,
                       const float* kern, int r, BlurBorder border, float* scratch, int* rows);

// The plain two-pass definition for one channel (tap loop in input order, no
// pairing): the reference the tests compare GaussianBlurPlane with.
void GaussianBlurPlaneRef(const float* in, float* out, int w, int h, const float* kern, int r,
                          BlurBorder border, float* tmp);

}  // namespace flawlens
