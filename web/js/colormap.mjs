// Heatmap rendering: a 256-entry colour LUT (an "inferno"-like perceptual map,
// dark = normal, bright = anomalous) and a helper that paints an anomaly map
// into a small canvas (one pixel per map cell). The caller scales that canvas
// onto the image with smoothing, so a 16x16 map costs 256 pixel writes.

const kStops = [  // position, r, g, b (sampled from matplotlib's inferno)
  [0.00, 0, 0, 4], [0.13, 31, 12, 72], [0.25, 85, 15, 109], [0.38, 136, 34, 106],
  [0.50, 186, 54, 85], [0.63, 227, 89, 51], [0.75, 249, 140, 10], [0.88, 249, 201, 50],
  [1.00, 252, 255, 164],
];

function buildLut() {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; ++i) {
    const t = i / 255;
    let k = 0;
    while (k < kStops.length - 2 && t > kStops[k + 1][0]) ++k;
    const [t0, r0, g0, b0] = kStops[k];
    const [t1, r1, g1, b1] = kStops[k + 1];
    const u = Math.min(1, Math.max(0, (t - t0) / (t1 - t0)));
    lut[i * 4] = r0 + (r1 - r0) * u;
    lut[i * 4 + 1] = g0 + (g1 - g0) * u;
    lut[i * 4 + 2] = b0 + (b1 - b0) * u;
    // Alpha ramps up with the value and stops at 0.8: normal regions stay
    // clear and the defect itself stays visible under the hottest colour.
    lut[i * 4 + 3] = Math.round(255 * Math.min(0.8, Math.max(0, (t - 0.04) * 1.4)));
  }
  return lut;
}

export const kLut = buildLut();

// Map value -> LUT index over the display range [low, high].
export function lutIndex(v, low, high) {
  if (!(high > low)) return v >= high ? 255 : 0;
  const t = (v - low) / (high - low);
  if (!(t > 0)) return 0;  // also NaN
  if (t >= 1) return 255;
  return (t * 255 + 0.5) | 0;
}

// Paint `map` (Float32Array, h*w) into `canvas` (resized to w x h).
// `scratch` is an optional {imageData} cache to avoid per-frame allocation.
export function paintMap(canvas, map, w, h, low, high, scratch = null) {
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  let img = scratch && scratch.imageData;
  if (!img || img.width !== w || img.height !== h) {
    img = ctx.createImageData(w, h);
    if (scratch) scratch.imageData = img;
  }
  const px = img.data;
  const n = Math.min(map.length, w * h);
  for (let i = 0; i < n; ++i) {
    const k = lutIndex(map[i], low, high) * 4;
    px[i * 4] = kLut[k];
    px[i * 4 + 1] = kLut[k + 1];
    px[i * 4 + 2] = kLut[k + 2];
    px[i * 4 + 3] = kLut[k + 3];
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

// Draw the painted map canvas onto ctx, covering mapRect (image pixels)
// scaled by (sx, sy) into the destination, with smoothing.
export function drawMapOver(ctx, mapCanvas, mapRect, sx, sy, opacity) {
  ctx.save();
  ctx.globalAlpha = opacity;
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(mapCanvas, mapRect.x * sx, mapRect.y * sy, mapRect.w * sx, mapRect.h * sy);
  ctx.restore();
}
