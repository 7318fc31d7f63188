// Takes docs/screenshot.png: the page with the demo images scored, in headless
// Chromium (the browser tests' launcher and server).
//
//   tools/build_site.sh build/wasm-release build/site   (after the wasm build)
//   node docs/screenshot.mjs [--site build/site] [--out docs/screenshot.png]
//
// The PNG is written with a 256-colour palette to keep the repository small.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { decodePng } from '../tools/bench/lib/png.mjs';
import { launch, waitReady, waitGalleryCount } from '../tools/bench/lib/browser.mjs';
import { startServer } from '../tools/bench/lib/server.mjs';

const kCrcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = kCrcTable[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// RGBA -> palette PNG: colours rounded to 6 bits per channel; the palette is
// the 64 grays (most of a screenshot of gray parts) plus the 192 most frequent
// other colours, and every pixel maps to the nearest entry.
function paletteEncode({ width, height, rgba: data }) {
  const key = (i) => ((data[i] >> 2) << 12) | ((data[i + 1] >> 2) << 6) | (data[i + 2] >> 2);
  const isGray = (k) => ((k >> 12) & 63) === (k & 63) && ((k >> 6) & 63) === (k & 63);
  const counts = new Map();
  for (let i = 0; i < data.length; i += 4) {
    const k = key(i);
    if (!isGray(k)) counts.set(k, (counts.get(k) || 0) + 1);
  }
  const grays = Array.from({ length: 64 }, (_, v) => (v << 12) | (v << 6) | v);
  // Most frequent first, skipping colours close to one already taken, so rare
  // but distinct colours (the colour bar) get entries too.
  const colours = [];
  const parts = (k) => [(k >> 12) & 63, (k >> 6) & 63, k & 63];
  for (const [k] of [...counts.entries()].sort((a, b) => b[1] - a[1])) {
    if (colours.length === 192) break;
    const [r, g, b] = parts(k);
    const close = colours.some((c) => {
      const [cr, cg, cb] = parts(c);
      return (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2 <= 3;
    });
    if (!close) colours.push(k);
  }
  const pal = [...grays, ...colours];
  const rgb = pal.map((k) => [((k >> 12) & 63) * 4 + 2, ((k >> 6) & 63) * 4 + 2, (k & 63) * 4 + 2]);
  const nearest = new Map();
  const index = (k) => {
    let best = nearest.get(k);
    if (best !== undefined) return best;
    const r = ((k >> 12) & 63) * 4 + 2, g = ((k >> 6) & 63) * 4 + 2, b = (k & 63) * 4 + 2;
    let bestD = Infinity;
    rgb.forEach(([pr, pg, pb], j) => {
      const d = (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2;
      if (d < bestD) { bestD = d; best = j; }
    });
    nearest.set(k, best);
    return best;
  };
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; ++y) {
    raw[y * (width + 1)] = 0;  // filter: none
    for (let x = 0; x < width; ++x) raw[y * (width + 1) + 1 + x] = index(key((y * width + x) * 4));
  }
  const chunk = (type, body) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(body.length);
    const tb = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(tb));
    return Buffer.concat([len, tb, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 3;  // 8-bit indices, palette
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('PLTE', Buffer.from(rgb.flat())),
    chunk('IDAT', zlib.deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const site = arg('--site', 'build/site');
const out = arg('--out', 'docs/screenshot.png');

const server = await startServer(site);
const b = await launch({ viewport: { width: 1100, height: 760 } });
try {
  const { page } = b;
  await page.goto(server.url);
  const ready = await waitReady(page);
  if (ready.engine !== 'ok' || ready.model !== 'ok') {
    throw new Error(`page not ready: ${JSON.stringify(ready)}`);
  }
  await page.click('#demo-btn');
  const count = await page.evaluate(async () => (await (await fetch('model/demo/index.json')).json()).length);
  await waitGalleryCount(page, count);
  await page.waitForTimeout(300);  // heatmap thumbnails finish painting
  // The detail view of the most anomalous image: the photo and its heatmap.
  await page.click('#gallery .thumb');
  await page.waitForSelector('#detail[open]');
  await page.waitForTimeout(500);
  const png = await page.locator('#detail').screenshot();
  fs.writeFileSync(path.resolve(out), paletteEncode(decodePng(png)));
  console.log(`screenshot: ${out} (${count} demo images)`);
} finally {
  await b.close();
  await server.close();
}
