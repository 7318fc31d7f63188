// Internal building blocks of the synth generator: a deterministic RNG, float
// planes, lattice value noise / fBm, blur and anti-aliased shape coverage.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace flawlens::synth {

constexpr float kPi = 3.14159265358979323846f;

// 64-bit mixer (splitmix64 finaliser).
inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
inline uint64_t HashCombine(uint64_t a, uint64_t b) { return Mix64(a ^ Mix64(b)); }

// std::mt19937_64's output sequence is fixed by the standard; the transforms
// below are written out so every standard library gives the same numbers.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  // [0, 1) with 53 random bits.
  double Uniform01() { return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0); }
  float Uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(Uniform01()); }
  // Integer in [lo, hi] (inclusive).
  int UniformInt(int lo, int hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int>(engine_() % span);  // bias < 2^-50: irrelevant here
  }
  bool Bernoulli(float p) { return Uniform01() < p; }
  // Standard normal via Box-Muller (no cached second value: simpler state).
  float Normal(float mean = 0.0f, float stddev = 1.0f) {
    double u1 = Uniform01();
    const double u2 = Uniform01();
    if (u1 < 1e-300) u1 = 1e-300;
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
    return mean + stddev * static_cast<float>(z);
  }
  uint64_t NextU64() { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

// A single-channel float image.
struct Plane {
  int w = 0, h = 0;
  std::vector<float> v;
  Plane() = default;
  Plane(int width, int height, float fill = 0.0f)
      : w(width), h(height), v(static_cast<size_t>(width) * height, fill) {}
  float& at(int x, int y) { return v[static_cast<size_t>(y) * w + x]; }
  float at(int x, int y) const { return v[static_cast<size_t>(y) * w + x]; }
};

// Value noise in [0, 1] on an integer lattice (smootherstep interpolation).
float ValueNoise(float x, float y, uint32_t seed);
// Fractal sum of value noise, roughly in [-1, 1].
float Fbm(float x, float y, uint32_t seed, int octaves, float lacunarity = 2.0f,
          float gain = 0.5f);
// Hash of an integer to [0, 1).
float Hash01(int64_t i, uint32_t seed);

// Separable box blur, `passes` times (3 passes ~ Gaussian), clamp-to-edge.
Plane BoxBlur(const Plane& in, int radius, int passes);

// Anti-aliased coverage (max-combined into `cov`) of a capsule from (x0,y0)
// to (x1,y1) whose width goes linearly from w0 to w1 pixels.
void DrawSegment(Plane& cov, float x0, float y0, float x1, float y1, float w0, float w1);
// Polyline with width interpolated from w0 (first point) to w1 (last point).
void DrawPolyline(Plane& cov, const std::vector<float>& xs, const std::vector<float>& ys,
                  float w0, float w1);

// Irregular blob: radius r(theta) = r * (1 + sum_k amp_k sin(k theta + phase_k)),
// alpha 1 inside, falling smoothly to 0 over `soft` pixels outside.
struct Blob {
  float cx = 0, cy = 0, r = 1, soft = 1;
  float amp[4] = {0, 0, 0, 0};
  float phase[4] = {0, 0, 0, 0};
  float RadiusAt(float theta) const;
};
Blob RandomBlob(Rng& rng, float cx, float cy, float r, float irregularity, float soft);
void DrawBlob(Plane& cov, const Blob& blob);

inline float Clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float Lerp(float a, float b, float t) { return a + (b - a) * t; }
inline float SmoothStep(float e0, float e1, float x) {
  const float t = Clamp01((x - e0) / (e1 - e0));
  return t * t * (3.0f - 2.0f * t);
}

}  // namespace flawlens::synth
