// Heatmap rendering: the 256-entry RGBA colour table shared with the CLI
// (inferno-like: dark = normal, bright = anomalous; alpha rises with the value
// and stops at 0.8, so normal regions stay clear and the defect stays visible
// under the hottest colour) and a helper that paints an anomaly map into a
// small canvas (one pixel per map cell). The caller scales that canvas onto
// the image with smoothing, so a 16x16 map costs 256 pixel writes.
//
// The table's source of truth is tools/cli/colormap.cc (`flawlens score
// --heatmaps`, `eval --report`); tests/tools/colormap_test.cc fails when this
// copy differs and prints the string to paste here.

// "rrggbbaa" per entry, index 0 first.
const kLutHex =
  '00000400010006000201080003010a0004010c0005020e000602100007031200' +
  '0703140008031600090419000a041b010b041d030c051f040d0521050e052307' +
  '0f0625081006270a1107290b12072b0c13072d0e14082f0f1508311116083312' +
  '160935131709371518093916190a3b181a0a3d191b0a3f1a1c0b421c1d0b441d' +
  '1e0c461f1f0c4820200c4921220c4a23240c4b24260c4d26280c4e27290d4f28' +
  '2b0d502a2d0d512b2f0d532d300d542e320d552f340d5631360d5832370d5934' +
  '390d5a353b0e5b363d0e5c383e0e5e39400e5f3b420e603c440e613d460e623f' +
  '470e6440490e65424b0e66434d0f67444e0f6846500f6a47520f6b49540f6c4a' +
  '550f6d4b57106d4d58106d4e5a116d505c116d515d126d525f136c5460136c55' +
  '62146c5763146c5865156c5966156c5b68166c5c69176c5e6b176c5f6c186c60' +
  '6e186c6270196b6371196b65731a6b66741b6b67761b6b69771c6b6a791c6b6c' +
  '7a1d6b6d7c1d6b6e7d1e6b707f1f6b71801f6a7382206a7484206a7585216a77' +
  '87216a7888226a7a8a23697b8b23697c8d24687e8f25677f9025668192266682' +
  '942765839527648597286486992963889a2962899c2a628a9d2b618c9f2b608d' +
  'a12c608fa22d5f90a42d5e91a62e5e93a72e5d94a92f5c96aa305c97ac305b98' +
  'ae315a9aaf32599bb132599db333589eb434579fb63457a1b83556a2b93655a4' +
  'bb3754a5bc3853a6bd3952a8be3a51a9c03b50abc13c4facc23d4eadc33e4daf' +
  'c53f4cb0c6404bb2c7414ab3c84249b4c94348b6cb4447b7cc4546b9cd4645ba' +
  'ce4744bbd04843bdd14a42bed24b41c0d34c40c1d54d3fc2d64e3ec4d74f3dc5' +
  'd8503cc7da513bc8db523ac9dc5339cbdd5438ccde5537cce05636cce15735cc' +
  'e25834cce35a33cce45b31cce55d30cce55f2fcce6602dcce7622ccce8642acc' +
  'e86529cce96728ccea6926ccea6a25cceb6c24ccec6e22cced6f21cced7120cc' +
  'ee731eccef741dccef761cccf0781accf17919ccf27b18ccf27d16ccf37e15cc' +
  'f48014ccf58212ccf58311ccf68510ccf7870eccf7880dccf88a0cccf98c0acc' +
  'f98d0bccf98f0cccf9910dccf9930fccf99510ccf99711ccf99812ccf99a13cc' +
  'f99c15ccf99e16ccf9a017ccf9a218ccf9a319ccf9a51bccf9a71cccf9a91dcc' +
  'f9ab1eccf9ad1fccf9af21ccf9b022ccf9b223ccf9b424ccf9b625ccf9b827cc' +
  'f9ba28ccf9bb29ccf9bd2accf9bf2bccf9c12dccf9c32eccf9c52fccf9c630cc' +
  'f9c832ccf9ca34ccf9cc38ccf9ce3cccf9cf3fccf9d143ccfad347ccfad54bcc' +
  'fad64eccfad852ccfada56ccfadc59ccfadd5dccfadf61ccfae165ccfae368cc' +
  'fbe56cccfbe670ccfbe874ccfbea77ccfbec7bccfbed7fccfbef82ccfbf186cc' +
  'fbf38accfbf48eccfcf691ccfcf895ccfcfa99ccfcfb9dccfcfda0ccfcffa4cc';

function decodeLut(hex) {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < lut.length; ++i) lut[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return lut;
}

export const kLut = decodeLut(kLutHex);

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
