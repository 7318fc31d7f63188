// Heatmap overlays for the CLI (score --heatmaps, eval --report): the table,
// value mapping and blending of cli/colormap.h, the page's colour map, at
// the opacity the page opens an image with.
#include "cli/cli_util.h"
#include "cli/colormap.h"

namespace flawlens::cli {

namespace {
// The default of the page's "Heatmap opacity" slider for an opened image
// (web/index.html, #detail-opacity).
constexpr float kOverlayOpacity = 0.6f;
}  // namespace

Image RenderOverlay(const Image& image, const std::vector<float>& map, int map_width,
                    int map_height, const RectF& map_rect, float low, float high) {
  if (map.empty() || map_width <= 0 || map_height <= 0) return ToRgb(image);
  Image out;
  const Status st = OverlayHeatmap(image.view(), map.data(), map_width, map_height, map_rect, low,
                                   high, kOverlayOpacity, &out);
  if (!st.ok()) return ToRgb(image);
  return out;
}

}  // namespace flawlens::cli
