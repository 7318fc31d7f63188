// Inference worker (module worker). Owns the wasm engine and the detector so
// the page never blocks on a network run. Protocol: the page posts
// {id, type, ...}; the worker answers {id, ok: true, result} or
// {id, ok: false, error: {name, message, code}}. Big buffers are transferred.
//
// Types:
//   init        {moduleUrl, mtModuleUrl?, threads?} -> {module: 'mt'|'st',
//               threads, maxThreads, fallback, timeline}. With mtModuleUrl (a
//               cross-origin isolated page) the threaded module is started
//               with `threads`; if it fails, the single-thread module is, and
//               `fallback` says why. Fails with code 'unsupported' where
//               WebAssembly SIMD is missing. timeline: [{name, t}] (t in ms
//               since the epoch: performance.timeOrigin + now()).
//   setThreads  {threads} -> {threads, info}: the count for the executors
//               made from now on; the loaded model is reloaded from its bytes
//               with it (info: as loadModel answers, null without a model).
//               A teaching collection keeps its threads until the next teachBegin.
//   loadModel   {bytes: ArrayBuffer, backend, threshold?} -> info
//               (the previous detector stays in use if loading fails)
//   detect      {bitmap: ImageBitmap} | {pixels: ArrayBuffer, width, height, format}
//               | {blob: Blob}, roi?, threshold?  -> result (map transferred)
//   warmUp      {width, height} -> {ms}: one detection of a grey frame, so
//               that the first real frame does not pay for the engine's
//               first run (the browser compiles wasm code lazily and
//               optimises what runs); the page asks for it while no camera
//               frame is waiting.
//   setThreshold {value} / resetThreshold    -> {threshold}
//   falseAlarmRate {threshold}  -> {rate, words} (the model's estimate of the
//               share of good parts flagged at that threshold; rate null
//               when the model carries no good-score summary)
//   thresholdForScores {scores: number[], rate} -> {threshold, rate, frames,
//               extrapolated, warnings} ("Calibrate here", the C++ rule)
//   stats       {}                            -> {wasmBytes, detections}
//
// Teaching (engine.mjs Teacher; the panel is ui/teach.mjs):
//   teachBegin  {seed?, dims?} -> {mapWidth, mapHeight, dims, featureChannels, minImages,
//               backbone: {name, licence}}: starts a collection on the bytes of
//               the model loaded now (kept by loadModel); error 'no_backbone'
//               when it has none, 'no_model' when nothing is loaded. A new
//               teachBegin drops the previous collection.
//   teachAdd    {bitmap: ImageBitmap} | {pixels: ArrayBuffer, width, height,
//               format}, roi? ({x, y, w, h} in pixels of the frame), group?
//               ('' for a camera frame, else a name shared by the photos of one
//               part) -> {images} (count so far). Per-frame errors, nothing added:
//               'black_frame' (no contrast: black / covered / blank camera),
//               'frozen_frame' (identical to the previous frame), 'bad_image',
//               'invalid_argument', 'non_finite'; 'no_teacher' before teachBegin.
//   teachFit    {name, roi?, source: 'camera'|'photos'|'both', frames, created,
//               sensitivity?} -> {bytes: ArrayBuffer (transferred), info (the
//               taught model's, as loadModel answers), calibration: {offset,
//               scale, threshold, mapLow, mapHigh, falseAlarmRate, goodImages,
//               goodGroups}, images, groups, warnings}.
//               roi: {x, y, w, h} in fractions of the frame (or null), stored
//               in the card with {"taught": {where: 'browser', source, frames,
//               created}}. While fitting the worker posts progress messages
//               {id, progress: fraction in [0, 1]} (no `ok` field) before the
//               answer. The detector in use is not replaced: the page loads
//               the bytes with loadModel. Errors: 'too_few', 'degenerate'
//               (the frames are all the same), 'no_teacher', 'invalid_argument'.
//               The collection stays: teachFit can be called again.
//   teachCancel {}  -> {} (drops the collection and frees its memory)

import { kMaxThreads } from './threads.mjs';

let engine = null;
let engineKind = null;  // 'mt' | 'st'
let engineFallback = null;
let det = null;
let detBackend = 'auto';
let modelBytes = null;  // the loaded model's file: what teachBegin teaches on
let teacher = null;
let detections = 0;
let canvas = null;
let ctx = null;

function fail(message, code = 'error') {
  const e = new Error(message);
  e.code = code;
  return e;
}

function requireDetector() {
  if (!det) throw fail('No model is loaded yet.', 'no_model');
  return det;
}

// ImageBitmap -> RGBA pixels through an OffscreenCanvas (reused).
function bitmapToRgba(bitmap) {
  const w = bitmap.width, h = bitmap.height;
  if (!canvas || canvas.width < w || canvas.height < h) {
    canvas = new OffscreenCanvas(Math.max(w, canvas ? canvas.width : 0), Math.max(h, canvas ? canvas.height : 0));
    ctx = canvas.getContext('2d', { willReadFrequently: true });
  }
  ctx.clearRect(0, 0, w, h);
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, w, h).data;
  return { pixels: data, width: w, height: h };
}

function packResult(r, width, height, extra = {}) {
  // The engine's map is already a copy out of wasm memory: transfer it.
  const map = r.map;
  return {
    result: {
      score: r.score, rawScore: r.rawScore, threshold: r.threshold, anomalous: r.anomalous,
      map, mapWidth: r.mapWidth, mapHeight: r.mapHeight,
      mapRect: { x: r.mapRect.x, y: r.mapRect.y, w: r.mapRect.w, h: r.mapRect.h },
      mapLow: r.mapLow, mapHigh: r.mapHigh,
      timings: { ...r.timings }, width, height, ...extra,
    },
    transfer: [map.buffer],
  };
}

// Start-up marks (epoch ms: comparable with the page's clock).
const timeline = [];
function mark(name) {
  timeline.push({ name, t: performance.timeOrigin + performance.now() });
}
mark('worker-start');
// engine.mjs is needed by every `init`: its fetch starts now, not when the message arrives.
const engineJs = import('./engine.mjs');
engineJs.catch(() => {});  // reported by init

// The pthread workers of the threaded module start with it; a pool worker
// that fails to load only throws in its onerror handler (Emscripten), and
// the module's promise then never settles. Both become a rejection here.
const kThreadedStartMs = 15000;

// The module's .wasm, fetched and compiled while its JS loads (in parallel,
// not one after the other). null where streaming compilation is not possible
// (the module then fetches the .wasm itself).
function compileWasm(moduleUrl) {
  if (typeof WebAssembly.compileStreaming !== 'function' || typeof fetch !== 'function') return null;
  const url = moduleUrl.replace(/\.mjs$/, '.wasm');
  return WebAssembly.compileStreaming(fetch(url, { credentials: 'same-origin' })).then((m) => {
    mark('wasm-compiled');
    return m;
  }, () => null);
}

async function startEngine(engineModule, moduleUrl, threads, compiled) {
  const wasmModule = compiled ? await compiled : null;
  return engineModule.createEngine({ moduleUrl, wasmModule: wasmModule || undefined, threads });
}

async function startThreaded(engineModule, moduleUrl, threads, compiled) {
  let onError = null;
  let timer = null;
  const failed = new Promise((_, reject) => {
    onError = (ev) => {
      ev.preventDefault();
      // A pool worker whose script did not load rethrows its error Event: "Uncaught [object Event]".
      const why = ev.error && ev.error.message ? ev.error.message
        : ev.message && !/\[object \w*Event\]/.test(ev.message) ? ev.message : 'its worker script did not load';
      reject(fail(`a thread of the threaded engine failed to start (${why})`, 'unsupported'));
    };
    timer = setTimeout(() => reject(fail(`the threaded engine did not start within ${kThreadedStartMs / 1000} s`,
                                         'unsupported')), kThreadedStartMs);
  });
  self.addEventListener('error', onError);
  try {
    return await Promise.race([startEngine(engineModule, moduleUrl, threads, compiled), failed]);
  } finally {
    clearTimeout(timer);
    self.removeEventListener('error', onError);
  }
}

function engineState() {
  const maxThreads = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, kMaxThreads));
  return {
    result: {
      module: engineKind, threads: engine.threads, maxThreads: engineKind === 'mt' ? maxThreads : 1,
      fallback: engineFallback, timeline: [...timeline],
    },
  };
}

function cleanInfo(info) {
  // Structured-clone-safe copy of det.info.
  return JSON.parse(JSON.stringify(info, (k, v) => (typeof v === 'bigint' ? Number(v) : v)));
}

const handlers = {
  async init({ moduleUrl, mtModuleUrl = null, threads = null }) {
    if (engine) return engineState();
    mark('init');
    const useMt = Boolean(mtModuleUrl) && typeof SharedArrayBuffer === 'function' && globalThis.crossOriginIsolated;
    const url = useMt ? mtModuleUrl : moduleUrl;
    const compiled = compileWasm(url);
    // The module's JS loads alongside engine.mjs (createEngine imports it
    // again: then from the module map). Its errors are createEngine's to report.
    const coreJs = import(url).then(() => mark('core-js-loaded'), () => {});
    let engineModule;
    try {
      engineModule = await engineJs;
    } catch (e) {
      throw fail(`Could not load the engine script (engine.mjs): ${e && e.message ? e.message : e}`, 'engine_load');
    }
    mark('engine-js-loaded');
    await coreJs;
    if (useMt) {
      const n = Math.max(1, Math.min(Number.isInteger(threads) ? threads : 1, kMaxThreads));
      try {
        engine = await startThreaded(engineModule, mtModuleUrl, n, compiled);
        engineKind = 'mt';
      } catch (e) {
        engineFallback = e && e.message ? e.message : String(e);
        console.warn(`[flawlens] threaded engine unavailable, using the single-thread one: ${engineFallback}`);
      }
    } else if (mtModuleUrl) {
      engineFallback = 'this worker is not cross-origin isolated';
    }
    if (!engine) {
      // Throws FlawlensError 'unsupported' without WebAssembly SIMD.
      engine = await startEngine(engineModule, moduleUrl, null, useMt ? compileWasm(moduleUrl) : compiled);
      engineKind = 'st';
    }
    mark('engine-ready');
    return engineState();
  },

  loadModel({ bytes, backend = 'auto', threshold = null }) {
    if (!engine) throw fail('The engine is not ready.', 'no_engine');
    const t0 = performance.now();
    const u8 = new Uint8Array(bytes);
    const next = engine.loadModel(u8, { backend });  // throws on a bad file
    if (det) det.dispose();
    det = next;
    detBackend = backend;
    modelBytes = u8;
    if (typeof threshold === 'number' && Number.isFinite(threshold)) det.threshold = threshold;
    return { result: { ...cleanInfo(det.info), loadMs: performance.now() - t0 } };
  },

  setThreads({ threads }) {
    if (!engine) throw fail('The engine is not ready.', 'no_engine');
    const n = engine.setThreads(Math.min(threads, engineState().result.maxThreads));
    let info = null;
    if (det && modelBytes) {
      // Row bands are planned at load: the model is loaded again (the
      // previous detector stays if that fails).
      const next = engine.loadModel(modelBytes, { backend: detBackend });
      next.threshold = det.threshold;
      det.dispose();
      det = next;
      info = cleanInfo(det.info);
    }
    return { result: { threads: n, info } };
  },

  async detect(msg) {
    const d = requireDetector();
    if (typeof msg.threshold === 'number' && Number.isFinite(msg.threshold) && d.threshold !== msg.threshold) {
      d.threshold = msg.threshold;
    }
    const roi = msg.roi && msg.roi.w > 0 && msg.roi.h > 0 ? msg.roi : null;
    const t0 = performance.now();
    if (msg.bitmap) {
      const { pixels, width, height } = bitmapToRgba(msg.bitmap);
      msg.bitmap.close();
      const t1 = performance.now();
      return packResult(d.detect(pixels, width, height, 'rgba', roi), width, height, { decodeMs: t1 - t0 });
    }
    if (msg.pixels) {
      const pixels = new Uint8Array(msg.pixels);
      return packResult(d.detect(pixels, msg.width, msg.height, msg.format || 'rgba', roi), msg.width, msg.height,
                        { decodeMs: 0 });
    }
    if (msg.blob) {
      let bitmap = null;
      try {
        bitmap = await createImageBitmap(msg.blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none',
                                                    imageOrientation: 'from-image' });
      } catch (browserError) {
        // The browser could not decode it: let the C++ core try (PNG/JPEG/BMP
        // variants). If that fails too, report both.
        const bytes = new Uint8Array(await msg.blob.arrayBuffer());
        let r;
        try {
          r = d.detectEncoded(bytes);
        } catch (coreError) {
          throw fail(`cannot decode it: ${coreError && coreError.message ? coreError.message : coreError}`,
                     'bad_image');
        }
        const rect = r.mapRect;
        return packResult(r, Math.round(rect.x + rect.w), Math.round(rect.y + rect.h),
                          { decodeMs: 0, decodedBy: 'core' });
      }
      const { pixels, width, height } = bitmapToRgba(bitmap);
      bitmap.close();
      const t1 = performance.now();
      return packResult(d.detect(pixels, width, height, 'rgba', roi), width, height,
                        { decodeMs: t1 - t0, decodedBy: 'browser' });
    }
    throw fail('detect: no image given', 'bad_request');
  },

  warmUp({ width = 640, height = 480 }) {
    const d = requireDetector();
    const w = Math.max(1, Math.min(Math.round(width) || 640, 4096));
    const h = Math.max(1, Math.min(Math.round(height) || 480, 4096));
    const t0 = performance.now();
    d.detect(new Uint8Array(w * h * 4).fill(128), w, h, 'rgba');
    return { result: { ms: performance.now() - t0 } };
  },

  setThreshold({ value }) {
    const d = requireDetector();
    d.threshold = value;
    return { result: { threshold: d.threshold } };
  },

  resetThreshold() {
    const d = requireDetector();
    d.resetThreshold();
    return { result: { threshold: d.threshold } };
  },

  falseAlarmRate({ threshold }) {
    const d = requireDetector();
    const rate = d.falseAlarmRate(Number(threshold));
    return { result: { rate: Number.isFinite(rate) ? rate : null, words: Number.isFinite(rate) ? d.describeRate(rate) : '' } };
  },

  thresholdForScores({ scores, rate }) {
    const d = requireDetector();
    if (!Array.isArray(scores) && !(scores instanceof Float32Array)) throw fail('scores must be an array of numbers', 'invalid_argument');
    const r = d.thresholdForScores(Float32Array.from(scores), Number(rate));
    return { result: { ...r, words: d.describeRate(r.rate) } };
  },

  teachBegin({ seed, dims }) {
    if (!engine) throw fail('The engine is not ready.', 'no_engine');
    if (!det || !modelBytes) throw fail('No model is loaded yet.', 'no_model');
    const next = engine.createTeacher(modelBytes, { seed, dims });  // throws 'no_backbone'
    if (teacher) teacher.dispose();
    teacher = next;
    const i = teacher.info;
    return {
      result: {
        mapWidth: i.mapWidth, mapHeight: i.mapHeight, dims: i.dims, featureChannels: i.featureChannels,
        minImages: i.minImages, backbone: { name: i.backbone.name, licence: i.backbone.licence },
      },
    };
  },

  teachAdd(msg) {
    if (!teacher) throw fail('Teaching has not begun.', 'no_teacher');  // onmessage closes the bitmap
    const roi = msg.roi && msg.roi.w > 0 && msg.roi.h > 0 ? msg.roi : null;
    let r;
    if (msg.bitmap) {
      const { pixels, width, height } = bitmapToRgba(msg.bitmap);
      msg.bitmap.close();
      r = teacher.addFrame(pixels, width, height, 'rgba', roi, msg.group ?? '');
    } else if (msg.pixels) {
      r = teacher.addFrame(new Uint8Array(msg.pixels), msg.width, msg.height, msg.format || 'rgba', roi, msg.group ?? '');
    } else {
      throw fail('teachAdd: no image given', 'bad_request');
    }
    return { result: { images: r.images } };
  },

  teachFit(msg, id) {
    if (!teacher) throw fail('Teaching has not begun.', 'no_teacher');
    const source = msg.source ?? 'camera';
    if (!['camera', 'photos', 'both'].includes(source)) {
      throw fail(`source must be 'camera', 'photos' or 'both', got '${source}'`, 'invalid_argument');
    }
    let roi = null;
    if (msg.roi) {
      const { x, y, w, h } = msg.roi;
      const ok = [x, y, w, h].every((v) => typeof v === 'number' && Number.isFinite(v)) &&
        x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 1 + 1e-6 && y + h <= 1 + 1e-6;
      if (!ok) throw fail('roi must be {x, y, w, h} in fractions of the frame (inside [0, 1])', 'invalid_argument');
      roi = { x, y, w, h };
    }
    const frames = Number.isInteger(msg.frames) && msg.frames >= 0 ? msg.frames : teacher.images;
    const created = typeof msg.created === 'string' ? msg.created : new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const options = {
      name: typeof msg.name === 'string' && msg.name.trim() ? msg.name.trim() : 'taught model',
      created,
      card: { taught: { where: 'browser', source, frames, created }, roi },
    };
    if (msg.sensitivity !== undefined && msg.sensitivity !== null) options.sensitivity = msg.sensitivity;
    let last = -1;
    const r = teacher.fit(options, (fraction) => {
      // At most ~100 messages: the page only draws a bar.
      if (fraction - last >= 0.01 || fraction >= 1) {
        last = fraction;
        self.postMessage({ id, progress: fraction });
      }
    });
    // The bytes must load as a detector: checked here, without replacing the one in use.
    const check = engine.loadModel(r.bytes);
    const info = cleanInfo(check.info);
    check.dispose();
    const bytes = r.bytes.buffer;
    return {
      result: { bytes, info, calibration: r.calibration, images: r.images, groups: r.groups, warnings: r.warnings },
      transfer: [bytes],
    };
  },

  teachCancel() {
    if (teacher) teacher.dispose();
    teacher = null;
    return {};
  },

  stats() {
    return {
      result: {
        wasmBytes: engine ? engine.memoryBytes : null, detections,
        module: engineKind, threads: engine ? engine.threads : null, timeline: [...timeline],
      },
    };
  },
};

self.onmessage = async (event) => {
  const msg = event.data || {};
  const { id, type } = msg;
  const handler = handlers[type];
  try {
    if (!handler) throw fail(`unknown request "${type}"`, 'bad_request');
    let out = await handler(msg, id);
    if (type === 'detect') ++detections;
    if (!out || !('result' in out)) out = { result: out };
    self.postMessage({ id, ok: true, result: out.result }, out.transfer || []);
  } catch (e) {
    if (msg.bitmap && typeof msg.bitmap.close === 'function') msg.bitmap.close();
    self.postMessage({
      id, ok: false,
      error: {
        name: (e && e.name) || 'Error',
        message: (e && e.message) || String(e),
        code: e && e.code !== undefined ? String(e.code) : undefined,
      },
    });
  }
};
