// The heatmap colour map, shared with the page: one 256-entry RGBA table
// (inferno-like: dark = normal, bright = anomalous; alpha rises with the
// value so normal regions stay clear). This file is its source of truth;
// web/js/colormap.mjs holds the same table as a hex string, and
// tests/tools/colormap_test.cc fails (printing the string to paste) when the
// two differ. Value -> index and the blend over an image follow the page
// (lutIndex, paintMap + drawMapOver in colormap.mjs), so `flawlens score
// --heatmaps` and `eval --report` draw what the page draws.
#pragma once

#include <cstdint>
#include <string>

#include "flawlens/image.h"
#include "flawlens/status.h"

namespace flawlens::cli {

inline constexpr int kHeatmapLutSize = 256;

// 256 x RGBA; index 0 = low (near black, transparent), 255 = high (pale
// yellow, alpha 204).
const uint8_t* HeatmapLut();

// The table as web/js/colormap.mjs spells it: "rrggbbaa" per entry, lower-case.
std::string HeatmapLutHex();

// Value -> table index over the display range [lo, hi], linear, rounded and
// clamped (NaN -> 0). If hi <= lo (or either is not finite) values >= hi map
// to 255, others to 0.
int HeatmapIndex(float v, float lo, float hi);

// map: h rows of w floats -> rgba_out (w * h * 4 bytes): the table entry of
// each value, alpha included; non-finite values become (0, 0, 0, 0). No
// allocation; no-op if w or h <= 0 or a pointer is null.
void ColorizeMap(const float* map, int w, int h, float lo, float hi, uint8_t* rgba_out);

// Blends the coloured map over `image` into an RGB8 image of the same size.
// The map (map_w x map_h) covers `map_rect` of the image (pixels, as in
// Detection::map_rect: cell (i, j) centred at map_rect.x + (j + 0.5) *
// map_rect.w / map_w); it is upsampled bilinearly (clamped at its edges).
// Each pixel takes the table colour with weight opacity * alpha / 255, the
// page's canvas compositing; pixels outside map_rect keep the image's colour
// (gray replicated, alpha dropped). opacity in [0, 1].
// rgb_out: image.width * image.height * 3 bytes.
Status OverlayHeatmap(const ImageView& image, const float* map, int map_w, int map_h,
                      const RectF& map_rect, float lo, float hi, float opacity, uint8_t* rgb_out);

// Same, into an owned image (resized as needed).
Status OverlayHeatmap(const ImageView& image, const float* map, int map_w, int map_h,
                      const RectF& map_rect, float lo, float hi, float opacity, Image* out);

}  // namespace flawlens::cli
