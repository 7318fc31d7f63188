#include "synth/raster.h"

#include <algorithm>

namespace flawlens::synth {
namespace {

inline float Lattice(int32_t x, int32_t y, uint32_t seed) {
  uint64_t h = (static_cast<uint64_t>(static_cast<uint32_t>(x)) << 32) |
               static_cast<uint32_t>(y);
  h = Mix64(h ^ (static_cast<uint64_t>(seed) * 0xD6E8FEB86659FD93ull));
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

inline float Smoother(float t) { return t * t * t * (t * (t * 6.0f - 15.0f) + 10.0f); }

}  // namespace

float Hash01(int64_t i, uint32_t seed) {
  const uint64_t h = Mix64(static_cast<uint64_t>(i) ^ (static_cast<uint64_t>(seed) << 32));
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

float ValueNoise(float x, float y, uint32_t seed) {
  const float fx = std::floor(x), fy = std::floor(y);
  const int32_t ix = static_cast<int32_t>(fx), iy = static_cast<int32_t>(fy);
  const float tx = Smoother(x - fx), ty = Smoother(y - fy);
  const float a = Lattice(ix, iy, seed), b = Lattice(ix + 1, iy, seed);
  const float c = Lattice(ix, iy + 1, seed), d = Lattice(ix + 1, iy + 1, seed);
  const float top = a + (b - a) * tx, bottom = c + (d - c) * tx;
  return top + (bottom - top) * ty;
}

float Fbm(float x, float y, uint32_t seed, int octaves, float lacunarity, float gain) {
  float sum = 0.0f, amp = 1.0f, norm = 0.0f, f = 1.0f;
  for (int o = 0; o < octaves; ++o) {
    // Offset each octave so lattice points do not line up.
    sum += amp * (ValueNoise(x * f + 17.31f * o, y * f - 9.17f * o, seed + 1013u * o) * 2.0f - 1.0f);
    norm += amp;
    amp *= gain;
    f *= lacunarity;
  }
  return sum / norm;
}

Plane BoxBlur(const Plane& in, int radius, int passes) {
  Plane a = in;
  if (radius <= 0) return a;
  Plane b(in.w, in.h);
  const float inv = 1.0f / (2 * radius + 1);
  for (int p = 0; p < passes; ++p) {
    // Horizontal: a -> b.
    for (int y = 0; y < a.h; ++y) {
      float acc = 0.0f;
      for (int k = -radius; k <= radius; ++k) acc += a.at(std::clamp(k, 0, a.w - 1), y);
      for (int x = 0; x < a.w; ++x) {
        b.at(x, y) = acc * inv;
        acc += a.at(std::min(x + radius + 1, a.w - 1), y) - a.at(std::max(x - radius, 0), y);
      }
    }
    // Vertical: b -> a.
    for (int x = 0; x < a.w; ++x) {
      float acc = 0.0f;
      for (int k = -radius; k <= radius; ++k) acc += b.at(x, std::clamp(k, 0, a.h - 1));
      for (int y = 0; y < a.h; ++y) {
        a.at(x, y) = acc * inv;
        acc += b.at(x, std::min(y + radius + 1, a.h - 1)) - b.at(x, std::max(y - radius, 0));
      }
    }
  }
  return a;
}

void DrawSegment(Plane& cov, float x0, float y0, float x1, float y1, float w0, float w1) {
  const float pad = std::max(w0, w1) * 0.5f + 1.5f;
  const int xa = std::max(0, static_cast<int>(std::floor(std::min(x0, x1) - pad)));
  const int xb = std::min(cov.w - 1, static_cast<int>(std::ceil(std::max(x0, x1) + pad)));
  const int ya = std::max(0, static_cast<int>(std::floor(std::min(y0, y1) - pad)));
  const int yb = std::min(cov.h - 1, static_cast<int>(std::ceil(std::max(y0, y1) + pad)));
  const float dx = x1 - x0, dy = y1 - y0;
  const float len2 = dx * dx + dy * dy;
  for (int y = ya; y <= yb; ++y) {
    for (int x = xa; x <= xb; ++x) {
      const float px = x + 0.5f - x0, py = y + 0.5f - y0;
      float t = len2 > 1e-12f ? (px * dx + py * dy) / len2 : 0.0f;
      t = Clamp01(t);
      const float ex = px - t * dx, ey = py - t * dy;
      const float d = std::sqrt(ex * ex + ey * ey);
      const float half = 0.5f * Lerp(w0, w1, t);
      // Pixel-area approximation: full inside, linear ramp over one pixel.
      float a = Clamp01(half + 0.5f - d);
      // Lines thinner than a pixel get proportionally fainter.
      if (half < 0.5f) a *= 2.0f * half;
      float& c = cov.at(x, y);
      if (a > c) c = a;
    }
  }
}

void DrawPolyline(Plane& cov, const std::vector<float>& xs, const std::vector<float>& ys,
                  float w0, float w1) {
  const size_t n = std::min(xs.size(), ys.size());
  if (n < 2) return;
  float total = 0.0f;
  for (size_t i = 1; i < n; ++i) total += std::hypot(xs[i] - xs[i - 1], ys[i] - ys[i - 1]);
  if (total <= 0.0f) return;
  float run = 0.0f;
  for (size_t i = 1; i < n; ++i) {
    const float seg = std::hypot(xs[i] - xs[i - 1], ys[i] - ys[i - 1]);
    const float wa = Lerp(w0, w1, run / total);
    run += seg;
    const float wb = Lerp(w0, w1, run / total);
    DrawSegment(cov, xs[i - 1], ys[i - 1], xs[i], ys[i], wa, wb);
  }
}

float Blob::RadiusAt(float theta) const {
  float m = 1.0f;
  for (int k = 0; k < 4; ++k) m += amp[k] * std::sin((k + 2) * theta + phase[k]);
  return r * std::max(0.3f, m);
}

Blob RandomBlob(Rng& rng, float cx, float cy, float r, float irregularity, float soft) {
  Blob b;
  b.cx = cx;
  b.cy = cy;
  b.r = r;
  b.soft = std::max(0.5f, soft);
  for (int k = 0; k < 4; ++k) {
    b.amp[k] = irregularity * rng.Uniform(-1.0f, 1.0f) / (k + 1);
    b.phase[k] = rng.Uniform(0.0f, 2.0f * kPi);
  }
  return b;
}

void DrawBlob(Plane& cov, const Blob& blob) {
  const float reach = blob.r * 2.2f + blob.soft + 2.0f;
  const int xa = std::max(0, static_cast<int>(blob.cx - reach));
  const int xb = std::min(cov.w - 1, static_cast<int>(blob.cx + reach));
  const int ya = std::max(0, static_cast<int>(blob.cy - reach));
  const int yb = std::min(cov.h - 1, static_cast<int>(blob.cy + reach));
  for (int y = ya; y <= yb; ++y) {
    for (int x = xa; x <= xb; ++x) {
      const float dx = x + 0.5f - blob.cx, dy = y + 0.5f - blob.cy;
      const float d = std::sqrt(dx * dx + dy * dy);
      const float rr = blob.RadiusAt(std::atan2(dy, dx));
      // 1 inside rr - soft/2, 0 outside rr + soft/2.
      const float a = 1.0f - SmoothStep(rr - 0.5f * blob.soft, rr + 0.5f * blob.soft, d);
      float& c = cov.at(x, y);
      if (a > c) c = a;
    }
  }
}

}  // namespace flawlens::synth
