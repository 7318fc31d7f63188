#include "synth/render.h"

#include <algorithm>
#include <cmath>

namespace flawlens::synth {
namespace {

uint32_t Seed32(Rng& rng) { return static_cast<uint32_t>(rng.NextU64() >> 32); }

float Deg(float d) { return d * kPi / 180.0f; }

// Small rotation of the part under the camera: N(0, sd) clipped to +-limit.
float OrientationJitter(Rng& rng, float sd_deg, float limit_deg) {
  return std::clamp(rng.Normal(0.0f, Deg(sd_deg)), -Deg(limit_deg), Deg(limit_deg));
}

// ---- brushed / machined metal (gray) ----------------------------------------
Surface RenderMetal(int w, int h, Rng& rng) {
  Surface s;
  s.kind = Kind::kMetal;
  s.ch.assign(1, Plane(w, h));
  const float angle = OrientationJitter(rng, 3.5f, 10.0f);
  const float ca = std::cos(angle), sa = std::sin(angle);
  const float len = rng.Uniform(45.0f, 110.0f);     // streak length (px)
  const float wid = rng.Uniform(0.9f, 1.5f);        // streak width (px)
  const float base = rng.Uniform(0.50f, 0.58f);
  const float c_band = rng.Uniform(0.025f, 0.05f);  // broad brushing bands
  const float c_streak = rng.Uniform(0.05f, 0.085f);
  const float c_grain = rng.Uniform(0.012f, 0.025f);
  const float c_mottle = rng.Uniform(0.015f, 0.04f);
  const float mottle_scale = rng.Uniform(45.0f, 90.0f);
  const float tool_period = rng.Uniform(14.0f, 28.0f);  // machining marks
  const float c_tool = rng.Uniform(0.0f, 0.018f);
  const float tool_phase = rng.Uniform(0.0f, 2.0f * kPi);
  const uint32_t s1 = Seed32(rng), s2 = Seed32(rng), s3 = Seed32(rng), s4 = Seed32(rng);
  const float ox = rng.Uniform(0.0f, 1000.0f), oy = rng.Uniform(0.0f, 1000.0f);
  Plane& p = s.ch[0];
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const float u = ca * x + sa * y + ox, v = -sa * x + ca * y + oy;
      const float band = Fbm(u / (len * 2.0f), v / (wid * 7.0f), s1, 3);
      const float streak = ValueNoise(u / len, v / wid, s2) * 2.0f - 1.0f;
      const float grain = ValueNoise(u / 2.5f, v / 0.9f, s3) * 2.0f - 1.0f;
      const float mottle = Fbm(x / mottle_scale + ox, y / mottle_scale + oy, s4, 3);
      const float tool = std::sin(2.0f * kPi * v / tool_period + tool_phase);
      p.at(x, y) = base + c_band * band + c_streak * streak + c_grain * grain +
                   c_mottle * mottle + c_tool * tool;
    }
  }
  s.feature_px = 3.0f;
  s.highlight_band = 0.22f;
  return s;
}

// ---- plain-weave fabric (RGB, denim-like) -------------------------------------
float ThreadProfile(float f, float half_width) {
  const float d = (f - 0.5f) / half_width;
  return d >= 1.0f || d <= -1.0f ? 0.0f : std::sqrt(1.0f - d * d);
}

Surface RenderFabric(int w, int h, Rng& rng) {
  Surface s;
  s.kind = Kind::kFabric;
  s.ch.assign(3, Plane(w, h));
  const float angle = OrientationJitter(rng, 2.0f, 6.0f);
  const float ca = std::cos(angle), sa = std::sin(angle);
  const float period = rng.Uniform(7.0f, 8.5f);
  const float half_warp = rng.Uniform(0.40f, 0.46f), half_weft = rng.Uniform(0.38f, 0.45f);
  const float warp_col[3] = {rng.Uniform(0.20f, 0.24f), rng.Uniform(0.29f, 0.33f),
                             rng.Uniform(0.50f, 0.56f)};
  const float weft_col[3] = {rng.Uniform(0.72f, 0.78f), rng.Uniform(0.72f, 0.77f),
                             rng.Uniform(0.68f, 0.74f)};
  const float distort = rng.Uniform(0.8f, 2.2f);  // cloth waviness (px)
  const float fuzz_amp = rng.Uniform(0.08f, 0.14f);
  const uint32_t sd = Seed32(rng), sw = Seed32(rng), sf = Seed32(rng), st = Seed32(rng);
  const float ox = rng.Uniform(0.0f, 1000.0f), oy = rng.Uniform(0.0f, 1000.0f);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const float du = distort * Fbm(x / 60.0f, y / 60.0f, sd, 2);
      const float dv = distort * Fbm(x / 60.0f + 31.0f, y / 60.0f, sw, 2);
      const float u = (ca * x + sa * y + ox + du) / period;
      const float v = (-sa * x + ca * y + oy + dv) / period;
      const float fi = std::floor(u), fj = std::floor(v);
      const int64_t i = static_cast<int64_t>(fi), j = static_cast<int64_t>(fj);
      const float fu = u - fi, fv = v - fj;
      const bool warp_over = ((i + j) & 1) == 0;
      // Per-thread thickness and brightness.
      const float tw = half_warp * (0.9f + 0.2f * Hash01(i, st));
      const float tf = half_weft * (0.9f + 0.2f * Hash01(j, st + 7));
      const float hw = ThreadProfile(fu, tw) *
                       (warp_over ? 0.65f + 0.35f * std::sin(kPi * fv) : 0.45f);
      const float hf = ThreadProfile(fv, tf) *
                       (warp_over ? 0.45f : 0.65f + 0.35f * std::sin(kPi * fu));
      const bool show_warp = hw >= hf;
      const float height = std::max(hw, hf);
      const float along = show_warp ? v * period : u * period;
      const float across = show_warp ? u * period : v * period;
      const float fuzz = Fbm(along / 5.0f, across / 0.8f, sf, 2);
      const float thread_gain = 0.93f + 0.14f * Hash01(show_warp ? i : j + 100003, st + 13);
      const float shade = (0.22f + 0.78f * height) * thread_gain * (1.0f + fuzz_amp * fuzz);
      const float* col = show_warp ? warp_col : weft_col;
      for (int c = 0; c < 3; ++c) s.ch[c].at(x, y) = col[c] * shade;
    }
  }
  s.feature_px = period;
  s.highlight_band = 0.0f;
  s.line_gain = 1.8f;
  return s;
}

// ---- glazed ceramic tile with speckles (RGB) ----------------------------------
Surface RenderTile(int w, int h, Rng& rng) {
  Surface s;
  s.kind = Kind::kTile;
  s.ch.assign(3, Plane(w, h));
  const float base[3] = {rng.Uniform(0.76f, 0.80f), rng.Uniform(0.72f, 0.76f),
                         rng.Uniform(0.64f, 0.69f)};
  const float mottle_amp = rng.Uniform(0.02f, 0.045f);
  const float mottle_scale = rng.Uniform(30.0f, 60.0f);
  const float peel_amp = rng.Uniform(0.008f, 0.018f);  // orange-peel glaze
  const uint32_t s1 = Seed32(rng), s2 = Seed32(rng);
  const float ox = rng.Uniform(0.0f, 1000.0f), oy = rng.Uniform(0.0f, 1000.0f);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const float m = mottle_amp * Fbm(x / mottle_scale + ox, y / mottle_scale + oy, s1, 4);
      const float peel = peel_amp * Fbm(x / 3.0f + ox, y / 3.0f + oy, s2, 2);
      for (int c = 0; c < 3; ++c) s.ch[c].at(x, y) = base[c] * (1.0f + m + peel);
    }
  }
  // Speckles: small dark/brown grains, part of the normal look of the tile.
  const float density = rng.Uniform(90.0f, 170.0f);
  const int n = static_cast<int>(density * w * h / 65536.0f);
  for (int k = 0; k < n; ++k) {
    const float cx = rng.Uniform(0.0f, static_cast<float>(w));
    const float cy = rng.Uniform(0.0f, static_cast<float>(h));
    const float r = rng.Uniform(0.35f, 1.1f);
    const float dark = rng.Uniform(0.08f, 0.28f);
    const int xa = std::max(0, static_cast<int>(cx - 3)), xb = std::min(w - 1, static_cast<int>(cx + 3));
    const int ya = std::max(0, static_cast<int>(cy - 3)), yb = std::min(h - 1, static_cast<int>(cy + 3));
    for (int y = ya; y <= yb; ++y) {
      for (int x = xa; x <= xb; ++x) {
        const float d = std::hypot(x + 0.5f - cx, y + 0.5f - cy);
        const float a = Clamp01(r + 0.5f - d) * std::min(1.0f, 2.0f * r);
        if (a <= 0.0f) continue;
        const float tint[3] = {0.85f, 1.0f, 1.15f};  // brownish grains
        for (int c = 0; c < 3; ++c) s.ch[c].at(x, y) *= 1.0f - dark * tint[c] * a;
      }
    }
  }
  s.feature_px = 3.0f;
  s.highlight_band = 0.08f;
  return s;
}

// ---- defects -------------------------------------------------------------------

// Blend helpers over all channels, weighted by a coverage plane.
void AddDelta(Surface& s, const Plane& a, const float* delta) {
  for (size_t c = 0; c < s.ch.size(); ++c)
    for (size_t i = 0; i < a.v.size(); ++i) s.ch[c].v[i] += delta[c] * a.v[i];
}
void MixTo(Surface& s, const Plane& a, const float* target, float k) {
  for (size_t c = 0; c < s.ch.size(); ++c)
    for (size_t i = 0; i < a.v.size(); ++i) s.ch[c].v[i] = Lerp(s.ch[c].v[i], target[c], k * a.v[i]);
}
void Threshold(const Plane& a, float thr, Plane& mask) {
  for (size_t i = 0; i < a.v.size(); ++i)
    if (a.v[i] > thr) mask.v[i] = 1.0f;
}

float MeanOf(const Plane& p) {
  double acc = 0;
  for (float v : p.v) acc += v;
  return static_cast<float>(acc / std::max<size_t>(1, p.v.size()));
}

// A random curve from a smooth random walk (turning rate itself wanders).
void RandomWalk(Rng& rng, float x, float y, float theta, float length, float step,
                float turn_sd, std::vector<float>& xs, std::vector<float>& ys) {
  xs.assign(1, x);
  ys.assign(1, y);
  float omega = 0.0f;
  for (float run = 0.0f; run < length; run += step) {
    omega = 0.8f * omega + rng.Normal(0.0f, turn_sd);
    theta += omega;
    x += step * std::cos(theta);
    y += step * std::sin(theta);
    xs.push_back(x);
    ys.push_back(y);
  }
}

void Scratch(float sev, Surface& s, Plane& mask, Rng& rng, float sc, float cx, float cy) {
  const int w = s.width(), h = s.height();
  Plane a(w, h);
  const float len = rng.Uniform(30.0f, 130.0f) * sc;
  const float th = rng.Uniform(0.0f, 2.0f * kPi);
  const float dx = std::cos(th), dy = std::sin(th);
  const float bend = rng.Uniform(-0.3f, 0.3f) * len;
  const float x0 = cx - 0.5f * len * dx, y0 = cy - 0.5f * len * dy;
  const float x2 = cx + 0.5f * len * dx, y2 = cy + 0.5f * len * dy;
  const float x1 = cx - dy * bend, y1 = cy + dx * bend;  // Bezier control point
  const int n = std::max(8, static_cast<int>(len / 3.0f));
  std::vector<float> xs, ys;
  for (int i = 0; i <= n; ++i) {
    const float t = static_cast<float>(i) / n, u = 1.0f - t;
    xs.push_back(u * u * x0 + 2 * u * t * x1 + t * t * x2);
    ys.push_back(u * u * y0 + 2 * u * t * y1 + t * t * y2);
  }
  const float width = rng.Uniform(0.9f, 2.2f) * std::max(0.6f, sc) * std::sqrt(s.line_gain);
  DrawPolyline(a, xs, ys, width, width * rng.Uniform(0.4f, 1.0f));
  const float amp =
      Lerp(0.05f, 0.35f, sev) * s.line_gain * (rng.Bernoulli(0.6f) ? 1.0f : -1.0f);
  const float mean = MeanOf(s.ch[0]) + 1e-3f;
  float delta[3];
  for (size_t c = 0; c < s.ch.size(); ++c) delta[c] = amp * (0.5f + 0.5f * MeanOf(s.ch[c]) / mean);
  AddDelta(s, a, delta);
  Threshold(a, 0.15f, mask);
}

// A jagged crack path: a slowly drifting main direction plus a sharp random
// kink at every step (no curling back on itself).
void JaggedPath(Rng& rng, float x, float y, float theta, float length, float step, float kink_sd,
                std::vector<float>& xs, std::vector<float>& ys) {
  xs.assign(1, x);
  ys.assign(1, y);
  float drift = 0.0f;
  for (float run = 0.0f; run < length; run += step) {
    drift = std::clamp(drift + rng.Normal(0.0f, 0.08f), -0.6f, 0.6f);
    const float a = theta + drift + rng.Normal(0.0f, kink_sd);
    x += step * std::cos(a);
    y += step * std::sin(a);
    xs.push_back(x);
    ys.push_back(y);
  }
}

void Crack(float sev, Surface& s, Plane& mask, Rng& rng, float sc, float cx, float cy) {
  const int w = s.width(), h = s.height();
  Plane a(w, h);
  const float len = rng.Uniform(40.0f, 120.0f) * sc;
  const float th = rng.Uniform(0.0f, 2.0f * kPi);
  const float step = std::max(2.0f, rng.Uniform(3.0f, 6.0f) * sc);
  std::vector<float> xs, ys, bx, by;
  // Start half a length back so the crack is centred near (cx, cy).
  JaggedPath(rng, cx - 0.5f * len * std::cos(th), cy - 0.5f * len * std::sin(th), th, len, step,
             0.4f, xs, ys);
  const float w0 = rng.Uniform(1.3f, 3.0f) * std::max(0.6f, sc) * std::sqrt(s.line_gain);
  DrawPolyline(a, xs, ys, w0, 0.6f);
  const int branches = rng.UniformInt(1, 3);
  for (int b = 0; b < branches; ++b) {
    const int n = static_cast<int>(xs.size());
    const size_t at = static_cast<size_t>(rng.UniformInt(n / 5, std::max(n / 5, n * 4 / 5 - 1)));
    const float dir = th + (rng.Bernoulli(0.5f) ? 1.0f : -1.0f) * rng.Uniform(0.5f, 1.1f);
    JaggedPath(rng, xs[at], ys[at], dir, len * rng.Uniform(0.2f, 0.5f), step, 0.4f, bx, by);
    const float t = static_cast<float>(at) / n;  // branch width = main width there
    DrawPolyline(a, bx, by, std::max(0.7f, 0.8f * Lerp(w0, 0.6f, t)), 0.5f);
  }
  const float k = std::min(0.92f, Lerp(0.25f, 0.8f, sev) * std::sqrt(s.line_gain));
  for (auto& p : s.ch)
    for (size_t i = 0; i < a.v.size(); ++i) p.v[i] *= 1.0f - k * a.v[i];
  Threshold(a, 0.15f, mask);
}

void Stain(float sev, Surface& s, Plane& mask, Rng& rng, float sc, float cx, float cy) {
  const int w = s.width(), h = s.height();
  Plane a(w, h);
  const float r = rng.Uniform(8.0f, 28.0f) * sc;
  const Blob blob = RandomBlob(rng, cx, cy, r, rng.Uniform(0.1f, 0.35f), rng.Uniform(0.5f, 1.2f) * r);
  DrawBlob(a, blob);
  const bool brighter = rng.Bernoulli(0.35f);
  const float amp = Lerp(0.04f, 0.2f, sev) * (brighter ? 1.0f : -1.0f);
  // Oil / water stains: flatten the texture a little and shift the level.
  const float flatten = 0.35f * sev;
  for (auto& p : s.ch) {
    const float m = MeanOf(p);
    for (size_t i = 0; i < a.v.size(); ++i) p.v[i] = Lerp(p.v[i], m, flatten * a.v[i]);
  }
  const float tint[3] = {0.8f, 1.0f, 1.25f};  // darker stains are yellow-brown
  float delta[3];
  for (size_t c = 0; c < s.ch.size(); ++c)
    delta[c] = amp * (s.ch.size() == 3 && !brighter ? tint[c] : 1.0f);
  AddDelta(s, a, delta);
  Threshold(a, 0.4f, mask);
}

void Hole(float sev, Surface& s, Plane& mask, Rng& rng, float sc, float cx, float cy) {
  const int w = s.width(), h = s.height();
  const float r = rng.Uniform(2.0f, 6.5f) * std::max(0.6f, sc);
  const float rim = rng.Uniform(1.0f, 2.2f);
  const float light = rng.Uniform(0.0f, 2.0f * kPi);
  const float depth = rng.Uniform(0.03f, 0.2f);
  const float k = Lerp(0.45f, 1.0f, sev);
  const float rim_amp = Lerp(0.05f, 0.25f, sev);
  const int reach = static_cast<int>(r + rim + 3);
  for (int y = std::max(0, static_cast<int>(cy) - reach); y <= std::min(h - 1, static_cast<int>(cy) + reach); ++y) {
    for (int x = std::max(0, static_cast<int>(cx) - reach); x <= std::min(w - 1, static_cast<int>(cx) + reach); ++x) {
      const float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
      const float d = std::hypot(dx, dy);
      const float cosang = d > 1e-3f ? (dx * std::cos(light) + dy * std::sin(light)) / d : 0.0f;
      const float in = Clamp01(r + 0.5f - d);                         // pit
      const float ring = Clamp01(r + rim + 0.5f - d) - in;             // rim
      // Inside: dark, with the wall facing the light a little brighter.
      const float pit = depth * (1.0f + 0.8f * std::max(0.0f, -cosang));
      const float rim_delta = ring * rim_amp * (cosang > 0 ? cosang : 0.5f * cosang);
      for (auto& p : s.ch) {
        float& v = p.at(x, y);
        v = Lerp(v, pit, k * in) + rim_delta;
      }
      if (in + ring > 0.5f) mask.at(x, y) = 1.0f;
    }
  }
}

void Smear(float sev, Surface& s, Plane& mask, Rng& rng, float sc, float cx, float cy) {
  const int w = s.width(), h = s.height();
  Plane a(w, h);
  const float r = rng.Uniform(12.0f, 40.0f) * sc;
  DrawBlob(a, RandomBlob(rng, cx, cy, r, 0.25f, rng.Uniform(0.3f, 0.6f) * r));
  const float k = Lerp(0.55f, 1.0f, sev);
  const float shift = rng.Uniform(-0.03f, 0.03f) * sev;
  const int radius = std::max(2, static_cast<int>(std::lround(s.feature_px)));
  for (auto& p : s.ch) {
    const Plane smooth = BoxBlur(p, radius, 3);
    for (size_t i = 0; i < a.v.size(); ++i) p.v[i] = Lerp(p.v[i], smooth.v[i] + shift, k * a.v[i]);
  }
  Threshold(a, 0.5f, mask);
}

void Contamination(float sev, Surface& s, Plane& mask, Rng& rng, float sc, float cx, float cy) {
  const int w = s.width(), h = s.height();
  Plane a(w, h);
  // Foreign colour: dark, bright, or (RGB) a coloured fibre.
  static const float kColours[4][3] = {
      {0.08f, 0.08f, 0.09f}, {0.93f, 0.93f, 0.9f}, {0.65f, 0.13f, 0.1f}, {0.1f, 0.45f, 0.2f}};
  const int pick = rng.UniformInt(0, s.ch.size() == 3 ? 3 : 1);
  float col[3];
  for (int c = 0; c < 3; ++c) col[c] = kColours[pick][c];
  if (s.ch.size() == 1) col[0] = pick == 0 ? rng.Uniform(0.05f, 0.25f) : rng.Uniform(0.8f, 0.95f);
  float k;
  float thr;
  if (rng.Bernoulli(0.55f)) {  // fibre / hair
    std::vector<float> xs, ys;
    const float len = rng.Uniform(40.0f, 140.0f) * sc;
    const float th = rng.Uniform(0.0f, 2.0f * kPi);
    RandomWalk(rng, cx - 0.5f * len * std::cos(th), cy - 0.5f * len * std::sin(th), th, len, 3.0f,
               0.05f, xs, ys);
    const float width = rng.Uniform(0.9f, 2.0f) * std::max(0.6f, sc);
    DrawPolyline(a, xs, ys, width, width);
    k = Lerp(0.35f, 0.95f, sev);
    thr = 0.15f;
  } else {  // particle / chip
    DrawBlob(a, RandomBlob(rng, cx, cy, rng.Uniform(1.8f, 5.0f) * std::max(0.6f, sc), 0.4f, 0.8f));
    k = Lerp(0.5f, 1.0f, sev);
    thr = 0.5f;
  }
  MixTo(s, a, col, k);
  Threshold(a, thr, mask);
}

}  // namespace

Surface RenderSurface(Kind kind, int width, int height, Rng& rng) {
  switch (kind) {
    case Kind::kMetal: return RenderMetal(width, height, rng);
    case Kind::kFabric: return RenderFabric(width, height, rng);
    case Kind::kTile: return RenderTile(width, height, rng);
  }
  return RenderMetal(width, height, rng);
}

void ApplyDefect(Defect defect, float severity, Surface& s, Plane& mask, Rng& rng) {
  const int w = s.width(), h = s.height();
  const float sc = std::min(w, h) / 256.0f;
  const float cx = rng.Uniform(0.2f, 0.8f) * w, cy = rng.Uniform(0.2f, 0.8f) * h;
  switch (defect) {
    case Defect::kScratch: Scratch(severity, s, mask, rng, sc, cx, cy); break;
    case Defect::kCrack: Crack(severity, s, mask, rng, sc, cx, cy); break;
    case Defect::kStain: Stain(severity, s, mask, rng, sc, cx, cy); break;
    case Defect::kHole: Hole(severity, s, mask, rng, sc, cx, cy); break;
    case Defect::kSmear: Smear(severity, s, mask, rng, sc, cx, cy); break;
    case Defect::kContamination: Contamination(severity, s, mask, rng, sc, cx, cy); break;
  }
}

Lighting RandomLighting(const Surface& surface, Rng& rng) {
  Lighting l;
  l.gain = rng.Uniform(0.82f, 1.15f);
  l.offset = rng.Uniform(-0.03f, 0.03f);
  l.grad_amp = rng.Uniform(0.0f, 0.22f);
  l.grad_dir = rng.Uniform(0.0f, 2.0f * kPi);
  l.vig_amp = rng.Uniform(0.0f, 0.2f);
  l.vig_cx = rng.Uniform(0.3f, 0.7f);
  l.vig_cy = rng.Uniform(0.3f, 0.7f);
  l.band_amp = rng.Uniform(0.0f, surface.highlight_band);
  l.band_dir = rng.Uniform(0.0f, 2.0f * kPi);
  l.band_pos = rng.Uniform(0.2f, 0.8f);
  l.band_sigma = rng.Uniform(0.12f, 0.35f);
  for (float& g : l.channel_gain) g = rng.Uniform(0.985f, 1.015f);
  l.noise_sigma = rng.Uniform(0.003f, 0.011f);
  l.noise_seed = rng.NextU64();
  return l;
}

std::vector<uint8_t> ExposeSurface(const Surface& s, const Lighting& l) {
  const int w = s.width(), h = s.height();
  const int nc = static_cast<int>(s.ch.size());
  std::vector<uint8_t> out(static_cast<size_t>(w) * h * nc);
  Rng noise(l.noise_seed);
  const float gdx = std::cos(l.grad_dir), gdy = std::sin(l.grad_dir);
  const float bdx = std::cos(l.band_dir), bdy = std::sin(l.band_dir);
  const float half_diag = 0.5f * std::hypot(static_cast<float>(w), static_cast<float>(h));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const float nx = (x + 0.5f) / w - 0.5f, ny = (y + 0.5f) / h - 0.5f;  // [-0.5, 0.5]
      float f = 1.0f + l.grad_amp * 2.0f * (nx * gdx + ny * gdy);
      const float vx = (x + 0.5f - l.vig_cx * w) / half_diag, vy = (y + 0.5f - l.vig_cy * h) / half_diag;
      f *= 1.0f - l.vig_amp * (vx * vx + vy * vy);
      const float bd = (nx * bdx + ny * bdy) - (l.band_pos - 0.5f);
      f += l.band_amp * std::exp(-(bd * bd) / (l.band_sigma * l.band_sigma));
      for (int c = 0; c < nc; ++c) {
        const float v = s.ch[c].at(x, y) * f * l.gain * (nc == 3 ? l.channel_gain[c] : 1.0f) +
                        l.offset + noise.Normal(0.0f, l.noise_sigma);
        const float q = std::round(Clamp01(v) * 255.0f);
        out[(static_cast<size_t>(y) * w + x) * nc + c] = static_cast<uint8_t>(q);
      }
    }
  }
  return out;
}

}  // namespace flawlens::synth
