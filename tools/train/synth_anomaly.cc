#include "train/synth_anomaly.h"

#include <algorithm>
#include <cmath>

namespace flawlens::train {
namespace {

float Uniform(std::mt19937* rng, float a, float b) {
  return std::uniform_real_distribution<float>(a, b)(*rng);
}
int RandInt(std::mt19937* rng, int a, int b) {  // inclusive
  return std::uniform_int_distribution<int>(a, b)(*rng);
}
bool Coin(std::mt19937* rng, float p) { return Uniform(rng, 0, 1) < p; }

float Smooth(float t) { return t * t * (3 - 2 * t); }

// Soft blob: an ellipse at (cy, cx) with radii (ry, rx) whose outline is
// perturbed by noise. Returns alpha in [0, 1] over the whole image (0 outside).
std::vector<float> Blob(int h, int w, float cy, float cx, float ry, float rx, float feather,
                        float roughness, std::mt19937* rng) {
  std::vector<float> alpha(size_t(h) * w, 0.0f);
  int y0 = std::max(0, int(cy - ry * 1.6f) - 1), y1 = std::min(h - 1, int(cy + ry * 1.6f) + 1);
  int x0 = std::max(0, int(cx - rx * 1.6f) - 1), x1 = std::min(w - 1, int(cx + rx * 1.6f) + 1);
  if (y1 < y0 || x1 < x0) return alpha;
  int bh = y1 - y0 + 1, bw = x1 - x0 + 1;
  std::vector<float> noise = PerlinField(bh, bw, 4, 2, rng);
  float angle = Uniform(rng, 0, 3.14159f);
  float ca = std::cos(angle), sa = std::sin(angle);
  for (int y = y0; y <= y1; ++y) {
    for (int x = x0; x <= x1; ++x) {
      float dy = y - cy, dx = x - cx;
      float u = (ca * dx + sa * dy) / rx, v = (-sa * dx + ca * dy) / ry;
      float d = std::sqrt(u * u + v * v);
      float val = 1.0f - d + roughness * (noise[size_t(y - y0) * bw + (x - x0)] - 0.5f);
      // val > 0 inside; feather is the soft edge width in radius units.
      float a = std::clamp(val / std::max(feather, 1e-3f) + 0.5f, 0.0f, 1.0f);
      alpha[size_t(y) * w + x] = a;
    }
  }
  return alpha;
}

// Blend `src` into img with alpha; label where alpha > 0.5 and visibly changed.
void Apply(FloatImage* img, const std::vector<float>& alpha, const FloatImage& changed,
           std::vector<float>* mask, float min_change) {
  int c = img->c;
  for (int y = 0; y < img->h; ++y) {
    for (int x = 0; x < img->w; ++x) {
      float a = alpha[size_t(y) * img->w + x];
      if (a <= 0) continue;
      float diff = 0;
      for (int ch = 0; ch < c; ++ch) {
        float old = img->at(y, x, ch);
        float nv = std::clamp(a * changed.at(y, x, ch) + (1 - a) * old, 0.0f, 255.0f);
        diff = std::max(diff, std::fabs(nv - old));
        img->at(y, x, ch) = nv;
      }
      if (a > 0.5f && diff >= min_change) (*mask)[size_t(y) * img->w + x] = 1.0f;
    }
  }
}

float Bilinear(const FloatImage& im, float y, float x, int ch) {
  y = std::clamp(y, 0.0f, float(im.h - 1));
  x = std::clamp(x, 0.0f, float(im.w - 1));
  int y0 = int(y), x0 = int(x);
  int y1 = std::min(y0 + 1, im.h - 1), x1 = std::min(x0 + 1, im.w - 1);
  float fy = y - y0, fx = x - x0;
  return (1 - fy) * ((1 - fx) * im.at(y0, x0, ch) + fx * im.at(y0, x1, ch)) +
         fy * ((1 - fx) * im.at(y1, x0, ch) + fx * im.at(y1, x1, ch));
}

float BlobMean(const FloatImage& im, const std::vector<float>& alpha, int ch) {
  double s = 0, n = 0;
  for (int y = 0; y < im.h; ++y)
    for (int x = 0; x < im.w; ++x) {
      float a = alpha[size_t(y) * im.w + x];
      if (a > 0.5f) { s += im.at(y, x, ch); n += 1; }
    }
  return n > 0 ? float(s / n) : 0.0f;
}

void Patch(FloatImage* img, std::vector<float>* mask, const std::vector<FloatImage>& pool,
           const SynthConfig& cfg, std::mt19937* rng) {
  int h = img->h, w = img->w;
  float side = float(std::min(h, w));
  float ry = Uniform(rng, 0.03f, 0.16f) * side, rx = ry * Uniform(rng, 0.4f, 2.5f);
  float cy = Uniform(rng, 0, h), cx = Uniform(rng, 0, w);
  std::vector<float> alpha = Blob(h, w, cy, cx, ry, rx, Uniform(rng, 0.05f, 0.3f), 0.8f, rng);
  const FloatImage* src = img;
  FloatImage self_copy;
  if (!pool.empty() && Coin(rng, 0.7f)) {
    src = &pool[RandInt(rng, 0, int(pool.size()) - 1)];
    if (src->c != img->c) src = img;
  }
  if (src == img) { self_copy = *img; src = &self_copy; }
  float scale = Coin(rng, 0.5f) ? Uniform(rng, 0.6f, 1.6f) : 1.0f;
  float oy = Uniform(rng, 0, src->h), ox = Uniform(rng, 0, src->w);
  const int shh = src->h, sww = src->w;
  bool transpose = Coin(rng, 0.3f);
  float gain = Coin(rng, 0.4f) ? Uniform(rng, 0.7f, 1.3f) : 1.0f;
  FloatImage changed = *img;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      if (alpha[size_t(y) * w + x] <= 0) continue;
      float dy = (y - cy) * scale, dx = (x - cx) * scale;
      if (transpose) std::swap(dy, dx);
      float sy = std::fmod(oy + dy + 8.0f * shh, float(shh)), sx = std::fmod(ox + dx + 8.0f * sww, float(sww));
      for (int ch = 0; ch < img->c; ++ch) changed.at(y, x, ch) = Bilinear(*src, sy, sx, ch) * gain;
    }
  if (Coin(rng, 0.5f)) {  // match the local mean: a texture, not a brightness, anomaly
    for (int ch = 0; ch < img->c; ++ch) {
      float shift = BlobMean(*img, alpha, ch) - BlobMean(changed, alpha, ch);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          if (alpha[size_t(y) * w + x] > 0) changed.at(y, x, ch) += shift;
    }
  }
  Apply(img, alpha, changed, mask, cfg.min_change);
}

void Region(FloatImage* img, std::vector<float>* mask, const SynthConfig& cfg, std::mt19937* rng) {
  int h = img->h, w = img->w;
  float side = float(std::min(h, w));
  float ry = Uniform(rng, 0.12f, 0.45f) * side, rx = ry * Uniform(rng, 0.5f, 2.0f);
  std::vector<float> alpha = Blob(h, w, Uniform(rng, 0, h), Uniform(rng, 0, w), ry, rx,
                                  Uniform(rng, 0.2f, 0.6f), 0.6f, rng);
  float gain = Coin(rng, 0.5f) ? Uniform(rng, 0.55f, 0.85f) : Uniform(rng, 1.15f, 1.6f);
  float bias = Uniform(rng, -15, 15);
  FloatImage changed = *img;
  for (float& v : changed.data) v = v * gain + bias;
  Apply(img, alpha, changed, mask, cfg.min_change);
}

void Spot(FloatImage* img, std::vector<float>* mask, const SynthConfig& cfg, std::mt19937* rng) {
  int h = img->h, w = img->w;
  int n = RandInt(rng, 1, 3);
  for (int i = 0; i < n; ++i) {
    float r = Uniform(rng, 1.5f, 7.0f);
    std::vector<float> alpha = Blob(h, w, Uniform(rng, 0, h), Uniform(rng, 0, w), r,
                                    r * Uniform(rng, 0.6f, 1.6f), 0.3f, 0.3f, rng);
    bool dark = Coin(rng, 0.7f);
    float f = dark ? Uniform(rng, 0.2f, 0.65f) : Uniform(rng, 1.4f, 2.2f);
    FloatImage changed = *img;
    for (float& v : changed.data) v = dark ? v * f : v * f + 20;
    Apply(img, alpha, changed, mask, cfg.min_change);
  }
}

void Crack(FloatImage* img, std::vector<float>* mask, const SynthConfig& cfg, std::mt19937* rng) {
  int h = img->h, w = img->w;
  std::vector<float> alpha(size_t(h) * w, 0.0f);
  float y = Uniform(rng, 0, h), x = Uniform(rng, 0, w);
  float angle = Uniform(rng, 0, 6.2832f);
  float width = Uniform(rng, 0.7f, 2.0f);
  int segments = RandInt(rng, 2, 6);
  float seg_len = Uniform(rng, 5, 20);
  for (int s = 0; s < segments; ++s) {
    angle += Uniform(rng, -0.7f, 0.7f);
    float ny = y + seg_len * std::sin(angle), nx = x + seg_len * std::cos(angle);
    int steps = int(seg_len * 2) + 1;
    for (int t = 0; t <= steps; ++t) {
      float py = y + (ny - y) * t / steps, px = x + (nx - x) * t / steps;
      int r = int(std::ceil(width)) + 1;
      for (int yy = int(py) - r; yy <= int(py) + r; ++yy)
        for (int xx = int(px) - r; xx <= int(px) + r; ++xx) {
          if (yy < 0 || xx < 0 || yy >= h || xx >= w) continue;
          float d = std::hypot(yy - py, xx - px);
          float a = std::clamp(width - d + 0.5f, 0.0f, 1.0f);
          float& dst = alpha[size_t(yy) * w + xx];
          dst = std::max(dst, a);
        }
    }
    y = ny;
    x = nx;
  }
  bool dark = Coin(rng, 0.8f);
  float f = dark ? Uniform(rng, 0.25f, 0.6f) : Uniform(rng, 1.4f, 2.0f);
  FloatImage changed = *img;
  for (float& v : changed.data) v = dark ? v * f : v * f + 15;
  Apply(img, alpha, changed, mask, cfg.min_change);
}

void Edge(FloatImage* img, std::vector<float>* mask, const SynthConfig& cfg, std::mt19937* rng) {
  int h = img->h, w = img->w;
  float side = float(std::min(h, w));
  float cy, cx;
  switch (RandInt(rng, 0, 3)) {
    case 0: cy = 0; cx = Uniform(rng, 0, w); break;
    case 1: cy = h - 1; cx = Uniform(rng, 0, w); break;
    case 2: cy = Uniform(rng, 0, h); cx = 0; break;
    default: cy = Uniform(rng, 0, h); cx = w - 1; break;
  }
  float r = Uniform(rng, 0.05f, 0.2f) * side;
  std::vector<float> alpha = Blob(h, w, cy, cx, r, r * Uniform(rng, 0.5f, 2.0f), 0.1f, 0.8f, rng);
  float lo = 255, hi = 0;
  for (float v : img->data) { lo = std::min(lo, v); hi = std::max(hi, v); }
  float level = Coin(rng, 0.75f) ? lo + Uniform(rng, 0, 20) : hi - Uniform(rng, 0, 20);
  FloatImage changed = *img;
  std::normal_distribution<float> n(0.0f, 3.0f);
  for (float& v : changed.data) v = level + n(*rng);
  Apply(img, alpha, changed, mask, cfg.min_change);
}

void Noise(FloatImage* img, std::vector<float>* mask, const SynthConfig& cfg, std::mt19937* rng) {
  int h = img->h, w = img->w;
  float side = float(std::min(h, w));
  float r = Uniform(rng, 0.04f, 0.18f) * side;
  std::vector<float> alpha = Blob(h, w, Uniform(rng, 0, h), Uniform(rng, 0, w), r,
                                  r * Uniform(rng, 0.5f, 2.0f), 0.3f, 0.7f, rng);
  float sigma = Uniform(rng, 10, 35);
  std::normal_distribution<float> n(0.0f, sigma);
  FloatImage changed = *img;
  for (int i = 0; i < h * w; ++i) {
    float d = n(*rng);
    for (int ch = 0; ch < img->c; ++ch) changed.data[size_t(i) * img->c + ch] += d;
  }
  Apply(img, alpha, changed, mask, cfg.min_change);
}

void Band(FloatImage* img, std::vector<float>* mask, const std::vector<FloatImage>& pool,
          const SynthConfig& cfg, std::mt19937* rng) {
  if (pool.empty()) return;
  const FloatImage& src = pool[RandInt(rng, 0, int(pool.size()) - 1)];
  if (src.c != img->c) return;
  int h = img->h, w = img->w;
  bool horizontal = Coin(rng, 0.5f);  // the seam runs across the crop
  int len = horizontal ? w : h, depth = horizontal ? h : w;
  float frac = Uniform(rng, 0.2f, 0.5f);
  bool from_start = Coin(rng, 0.5f);
  float feather = Uniform(rng, 1.5f, 5.0f);
  std::vector<float> wave = PerlinField(1, len, 3, 2, rng);
  float amp = Uniform(rng, 0.0f, 0.15f) * depth;
  std::vector<float> alpha(size_t(h) * w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      int along = horizontal ? x : y, across = horizontal ? y : x;
      float seam = frac * depth + amp * (wave[size_t(along)] - 0.5f);
      float d = from_start ? seam - across : across - (depth - seam);
      alpha[size_t(y) * w + x] = std::clamp(d / feather + 0.5f, 0.0f, 1.0f);
    }
  // Foreign texture at a random offset and scale, its mean and contrast over
  // the band matched to the image's own.
  float scale = Uniform(rng, 0.8f, 1.25f);
  float oy = Uniform(rng, 0, src.h), ox = Uniform(rng, 0, src.w);
  FloatImage changed = *img;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float sy = std::fmod(oy + y * scale, float(src.h)), sx = std::fmod(ox + x * scale, float(src.w));
      for (int ch = 0; ch < img->c; ++ch) changed.at(y, x, ch) = Bilinear(src, sy, sx, ch);
    }
  for (int ch = 0; ch < img->c; ++ch) {
    double s0 = 0, q0 = 0, s1 = 0, q1 = 0, n = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        if (alpha[size_t(y) * w + x] <= 0.5f) continue;
        float a = img->at(y, x, ch), b = changed.at(y, x, ch);
        s0 += a; q0 += a * a; s1 += b; q1 += b * b; n += 1;
      }
    if (n < 2) return;
    double m0 = s0 / n, m1 = s1 / n;
    double sd0 = std::sqrt(std::max(1e-6, q0 / n - m0 * m0)), sd1 = std::sqrt(std::max(1e-6, q1 / n - m1 * m1));
    float g = float(sd0 / sd1);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        float& v = changed.at(y, x, ch);
        v = float(m0) + g * (v - float(m1));
      }
  }
  Apply(img, alpha, changed, mask, cfg.min_change);
}

}  // namespace

std::vector<float> PerlinField(int h, int w, int cells, int octaves, std::mt19937* rng) {
  std::vector<float> out(size_t(h) * w, 0.0f);
  float amp = 1, total = 0;
  for (int o = 0; o < octaves; ++o) {
    int gy = std::max(2, cells * h / std::max(h, w) + 1) + 1;
    int gx = std::max(2, cells * w / std::max(h, w) + 1) + 1;
    std::vector<float> grid(size_t(gy) * gx);
    for (float& g : grid) g = Uniform(rng, 0, 1);
    for (int y = 0; y < h; ++y) {
      float fy = float(y) / std::max(1, h - 1) * (gy - 1);
      int y0 = std::min(int(fy), gy - 2);
      float ty = Smooth(fy - y0);
      for (int x = 0; x < w; ++x) {
        float fx = float(x) / std::max(1, w - 1) * (gx - 1);
        int x0 = std::min(int(fx), gx - 2);
        float tx = Smooth(fx - x0);
        float a = grid[y0 * gx + x0], b = grid[y0 * gx + x0 + 1];
        float c = grid[(y0 + 1) * gx + x0], d = grid[(y0 + 1) * gx + x0 + 1];
        out[size_t(y) * w + x] += amp * ((1 - ty) * ((1 - tx) * a + tx * b) + ty * ((1 - tx) * c + tx * d));
      }
    }
    total += amp;
    amp *= 0.5f;
    cells *= 2;
  }
  for (float& v : out) v /= total;
  return out;
}

PreprocessConfig RawResizeConfig(int w, int h, int channels) {
  PreprocessConfig c;
  c.resize_w = w;
  c.resize_h = h;
  c.channels = channels;
  c.scale = 1.0f;
  return c;
}

void PaintAnomalies(FloatImage* img, std::vector<float>* mask, const std::vector<FloatImage>& pool,
                    const SynthConfig& cfg, std::mt19937* rng) {
  mask->assign(size_t(img->h) * img->w, 0.0f);
  float weights[7] = {cfg.patch, cfg.region, cfg.spot, cfg.crack, cfg.edge, cfg.noise, cfg.band};
  float total = 0;
  for (float v : weights) total += std::max(0.0f, v);
  if (total <= 0) return;
  int last = 6;  // the last kind with a positive weight (takes any rounding leftover)
  while (weights[last] <= 0) --last;
  int n = RandInt(rng, 1, std::max(1, cfg.max_anomalies));
  for (int i = 0; i < n; ++i) {
    float r = Uniform(rng, 0, total);
    int kind = 0;
    for (; kind < last; ++kind) {
      r -= std::max(0.0f, weights[kind]);
      if (r < 0) break;
    }
    switch (kind) {
      case 0: Patch(img, mask, pool, cfg, rng); break;
      case 1: Region(img, mask, cfg, rng); break;
      case 2: Spot(img, mask, cfg, rng); break;
      case 3: Crack(img, mask, cfg, rng); break;
      case 4: Edge(img, mask, cfg, rng); break;
      case 5: Noise(img, mask, cfg, rng); break;
      default: Band(img, mask, pool, cfg, rng); break;
    }
  }
}

}  // namespace flawlens::train
