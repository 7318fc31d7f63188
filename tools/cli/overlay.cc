// Heatmap overlays for the CLI (score --heatmaps, eval --report): the shared
// implementation in src/image/colormap.h (Turbo LUT, bilinear upsampling
// following map_rect), so the CLI and the page draw the same picture.
#include "cli/cli_util.h"
#include "image/colormap.h"

namespace flawlens::cli {

Image RenderOverlay(const Image& image, const std::vector<float>& map, int map_width,
                    int map_height, const RectF& map_rect, float low, float high) {
  if (map.empty() || map_width <= 0 || map_height <= 0) return ToRgb(image);
  Image out;
  const Status st = OverlayHeatmap(image.view(), map.data(), map_width, map_height, map_rect, low,
                                   high, /*opacity=*/0.5f, &out);
  if (!st.ok()) return ToRgb(image);
  return out;
}

}  // namespace flawlens::cli
