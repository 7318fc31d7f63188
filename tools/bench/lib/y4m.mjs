// Write a YUV4MPEG2 (4:2:0) clip for Chromium's fake webcam
// (--use-file-for-fake-video-capture). Chromium reads limited-range BT.601:
// Y = 16 + 219 * luma / 255, Cb/Cr = 128 + 224 * (B-Y or R-Y scaled) / 255.
import fs from 'node:fs';

// Bilinear resize of RGBA to w x h (even sizes for 4:2:0).
export function resizeRgba(src, sw, sh, w, h) {
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; ++y) {
    const fy = Math.max(0, Math.min(sh - 1, ((y + 0.5) * sh) / h - 0.5));
    const y0 = Math.floor(fy), y1 = Math.min(sh - 1, y0 + 1), wy = fy - y0;
    for (let x = 0; x < w; ++x) {
      const fx = Math.max(0, Math.min(sw - 1, ((x + 0.5) * sw) / w - 0.5));
      const x0 = Math.floor(fx), x1 = Math.min(sw - 1, x0 + 1), wx = fx - x0;
      for (let c = 0; c < 4; ++c) {
        const a = src[(y0 * sw + x0) * 4 + c], b = src[(y0 * sw + x1) * 4 + c];
        const d = src[(y1 * sw + x0) * 4 + c], e = src[(y1 * sw + x1) * 4 + c];
        out[(y * w + x) * 4 + c] = Math.round((a * (1 - wx) + b * wx) * (1 - wy) + (d * (1 - wx) + e * wx) * wy);
      }
    }
  }
  return out;
}

function rgbaToI420(rgba, w, h) {
  const Y = Buffer.alloc(w * h), U = Buffer.alloc((w / 2) * (h / 2)), V = Buffer.alloc((w / 2) * (h / 2));
  const clamp = (v) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  for (let i = 0; i < w * h; ++i) {
    const r = rgba[i * 4], g = rgba[i * 4 + 1], b = rgba[i * 4 + 2];
    const luma = 0.299 * r + 0.587 * g + 0.114 * b;
    Y[i] = clamp(16 + (luma * 219) / 255);
  }
  for (let y = 0; y < h / 2; ++y) {
    for (let x = 0; x < w / 2; ++x) {
      let r = 0, g = 0, b = 0;
      for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
        const i = (2 * y + dy) * w + 2 * x + dx;
        r += rgba[i * 4]; g += rgba[i * 4 + 1]; b += rgba[i * 4 + 2];
      }
      r /= 4; g /= 4; b /= 4;
      const luma = 0.299 * r + 0.587 * g + 0.114 * b;
      U[y * (w / 2) + x] = clamp(128 + ((b - luma) / 1.772) * (224 / 255));
      V[y * (w / 2) + x] = clamp(128 + ((r - luma) / 1.402) * (224 / 255));
    }
  }
  return Buffer.concat([Y, U, V]);
}

// frames: array of {rgba, width, height}; each is resized to w x h.
export function writeY4m(file, frames, { width = 320, height = 240, fps = 10 } = {}) {
  if (width % 2 || height % 2) throw new Error('y4m 4:2:0 needs even width and height');
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, `YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`);
    for (const f of frames) {
      const rgba = f.width === width && f.height === height ? f.rgba : resizeRgba(f.rgba, f.width, f.height, width, height);
      fs.writeSync(fd, 'FRAME\n');
      fs.writeSync(fd, rgbaToI420(rgba, width, height));
    }
  } finally {
    fs.closeSync(fd);
  }
}
