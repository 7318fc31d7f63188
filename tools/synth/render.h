// Internal: material textures, defects and lighting of the synth generator.
#pragma once

#include <string>
#include <vector>

#include "synth/raster.h"

namespace flawlens::synth {

enum class Kind { kMetal = 0, kFabric = 1, kTile = 2 };

// A material's reflectance before lighting, values roughly in [0, 1].
struct Surface {
  Kind kind = Kind::kMetal;
  std::vector<Plane> ch;      // 1 (gray) or 3 (RGB) planes
  float feature_px = 4.0f;    // texture period, sizes the smear's blur
  float highlight_band = 0;   // max strength of a specular band (metal)
  float line_gain = 1;        // contrast / width boost of thin line defects on busy textures
  int width() const { return ch.empty() ? 0 : ch[0].w; }
  int height() const { return ch.empty() ? 0 : ch[0].h; }
};

Surface RenderSurface(Kind kind, int width, int height, Rng& rng);

enum class Defect { kScratch = 0, kCrack, kStain, kHole, kSmear, kContamination };
constexpr int kNumDefects = 6;

// Paints `defect` onto `surface`; `mask` (same size, zero on entry) gets 1
// where the defect is. severity in [0, 1]: 0 subtle, 1 obvious.
void ApplyDefect(Defect defect, float severity, Surface& surface, Plane& mask, Rng& rng);

// Per-image lighting and camera: gain, gradient, vignette, specular band,
// colour balance, sensor noise, quantisation to 8 bits.
struct Lighting {
  float gain = 1, offset = 0;
  float grad_amp = 0, grad_dir = 0;
  float vig_amp = 0, vig_cx = 0.5f, vig_cy = 0.5f;
  float band_amp = 0, band_dir = 0, band_pos = 0.5f, band_sigma = 0.3f;
  float channel_gain[3] = {1, 1, 1};
  float noise_sigma = 0.01f;
  uint64_t noise_seed = 0;
};
Lighting RandomLighting(const Surface& surface, Rng& rng);
// Interleaved 8-bit pixels.
std::vector<uint8_t> ExposeSurface(const Surface& surface, const Lighting& lighting);

}  // namespace flawlens::synth
