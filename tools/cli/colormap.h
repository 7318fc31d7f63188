// Anomaly-map colouring for heatmap images (CLI PNGs; the page may use the
// same LUT). Turbo colormap: Anton Mikhailov's (Google, 2019) polynomial
// approximation, sampled at 256 points.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "image/preprocess.h"

namespace flawlens {

// 256 x RGB, index 0 = low (dark blue), 255 = high (dark red).
const uint8_t* TurboLut();

// Colour for t in [0, 1] (clamped; NaN -> index 0).
void TurboColor(float t, uint8_t rgb[3]);

// map: h rows of w floats. Value lo -> LUT[0], hi -> LUT[255], linear and
// clamped. Non-finite values become transparent (0,0,0,0); others alpha 255.
// If hi <= lo (or either is not finite) values >= hi map to 255, others to 0.
// rgba_out: w * h * 4 bytes. No allocation; no-op if w or h <= 0 or a
// pointer is null.
void ColorizeMap(const float* map, int w, int h, float lo, float hi, uint8_t* rgba_out);

// Blends the coloured map over `image` into an RGB8 image of the same size.
// The map (map_w x map_h) covers `map_rect` of the image (pixels, as in
// Detection::map_rect: cell (i, j) centred at map_rect.x + (j + 0.5) *
// map_rect.w / map_w); it is upsampled bilinearly (clamped at its edges).
// Pixels outside map_rect keep the image's colour (gray replicated, alpha
// dropped). opacity in [0, 1] is the weight of the colour.
// rgb_out: image.width * image.height * 3 bytes.
Status OverlayHeatmap(const ImageView& image, const float* map, int map_w, int map_h,
                      const RectF& map_rect, float lo, float hi, float opacity, uint8_t* rgb_out);

// Same, into an owned image (resized as needed).
Status OverlayHeatmap(const ImageView& image, const float* map, int map_w, int map_h,
                      const RectF& map_rect, float lo, float hi, float opacity, Image* out);

}  // namespace flawlens
