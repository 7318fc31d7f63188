// Separable symmetric blur, SIMD128 (core/simd128.h: SSE2 natively,
// wasm SIMD128 in the browser). Both passes keep a block of output columns in
// registers across all taps (no read-modify-write of the output per tap) and
// add the two taps at distance d before the one multiply by kern[r + d].
#include "image/gaussian_blur.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/simd128.h"

namespace flawlens {

namespace {

using simd::f32x4;
using simd::Load;
using simd::Splat;
using simd::Store;

// out[x] for x in [x0, x0 + 4 * V): sum over the 2r + 1 taps of
// kern[k] * src_k[x], where src_k = base(k) is a row (vertical pass) or a
// shifted padded row (horizontal pass).
template <int V, class Src>
inline void BlockV(const float* kern, int r, int x, Src src, float* out) {
  const f32x4 kc = Splat(kern[r]);
  f32x4 a[V];
  const float* c = src(r);
  for (int v = 0; v < V; ++v) a[v] = kc * Load(c + x + 4 * v);
  for (int d = 1; d <= r; ++d) {
    const f32x4 g = Splat(kern[r + d]);
    const float* lo = src(r - d);
    const float* hi = src(r + d);
    for (int v = 0; v < V; ++v) a[v] += g * (Load(lo + x + 4 * v) + Load(hi + x + 4 * v));
  }
  for (int v = 0; v < V; ++v) Store(out + x + 4 * v, a[v]);
}

template <class Src>
inline void Row(const float* kern, int r, int w, Src src, float* out) {
  int x = 0;
  for (; x + 16 <= w; x += 16) BlockV<4>(kern, r, x, src, out);
  for (; x + 4 <= w; x += 4) BlockV<1>(kern, r, x, src, out);
  for (; x < w; ++x) {
    float a = kern[r] * src(r)[x];
    for (int d = 1; d <= r; ++d) a += kern[r + d] * (src(r - d)[x] + src(r + d)[x]);
    out[x] = a;
  }
}

}  // namespace

int BlurBorderIndex(int j, int n, BlurBorder border) {
  if (j >= 0 && j < n) return j;
  if (border == BlurBorder::kReflect) {
    const int p = 2 * n;
    int m = j % p;
    if (m < 0) m += p;
    return m >= n ? p - 1 - m : m;
  }
  if (n == 1) return 0;
  const int p = 2 * n - 2;
  int m = j % p;
  if (m < 0) m += p;
  return m >= n ? p - m : m;
}

void GaussianBlurPlane(const float* in, float* out, int w, int h, int channels,
                       const float* kern, int r, BlurBorder border, float* scratch, int* rows) {
  const int c = channels;
  const int row_n = w * c;  // floats per row
  float* tmp = scratch;
  float* pad = scratch + static_cast<size_t>(row_n) * h;
  // Horizontal: pad each row with its reflection (whole pixels), then slide
  // the kernel; the tap k of element e is pad[e + k * c].
  for (int y = 0; y < h; ++y) {
    const float* src = in + static_cast<size_t>(y) * row_n;
    for (int i = 0; i < r; ++i) {
      const float* lo = src + static_cast<size_t>(BlurBorderIndex(i - r, w, border)) * c;
      const float* hi = src + static_cast<size_t>(BlurBorderIndex(w + i, w, border)) * c;
      for (int ch = 0; ch < c; ++ch) {
        pad[i * c + ch] = lo[ch];
        pad[(r + w + i) * c + ch] = hi[ch];
      }
    }
    std::memcpy(pad + r * c, src, static_cast<size_t>(row_n) * sizeof(float));
    Row(kern, r, row_n, [pad, c](int k) { return pad + k * c; },
        tmp + static_cast<size_t>(y) * row_n);
  }
  // Vertical: output row y sums the rows of tmp at offsets rows[0 .. 2r].
  for (int y = 0; y < h; ++y) {
    for (int k = 0; k <= 2 * r; ++k) rows[k] = BlurBorderIndex(y + k - r, h, border) * row_n;
    Row(kern, r, row_n, [tmp, rows](int k) { return tmp + rows[k]; },
        out + static_cast<size_t>(y) * row_n);
  }
}

void GaussianBlurPlaneRef(const float* in, float* out, int w, int h, const float* kern, int r,
                          BlurBorder border, float* tmp) {
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      float s = 0;
      for (int k = 0; k <= 2 * r; ++k) {
        s += kern[k] * in[static_cast<size_t>(y) * w + BlurBorderIndex(x + k - r, w, border)];
      }
      tmp[static_cast<size_t>(y) * w + x] = s;
    }
  }
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      float s = 0;
      for (int k = 0; k <= 2 * r; ++k) {
        s += kern[k] * tmp[static_cast<size_t>(BlurBorderIndex(y + k - r, h, border)) * w + x];
      }
      out[static_cast<size_t>(y) * w + x] = s;
    }
  }
}

std::vector<float> GaussianKernel(float sigma) {
  const int radius = std::max(1, static_cast<int>(std::ceil(3.0f * sigma)));
  std::vector<float> k(static_cast<size_t>(2 * radius + 1));
  float sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    k[static_cast<size_t>(i + radius)] = std::exp(-0.5f * static_cast<float>(i * i) / (sigma * sigma));
    sum += k[static_cast<size_t>(i + radius)];
  }
  for (float& v : k) v /= sum;
  return k;
}

}  // namespace flawlens
