// flawlens engine: the one JS module that talks to the Emscripten module.
//
//   const engine = await createEngine({ moduleUrl });      // throws FlawlensError
//   // the threaded module (flawlens-core-mt.mjs, cross-origin isolated pages):
//   const engine = await createEngine({ moduleUrl: mtUrl, threads: 2 });
//   engine.threads;  engine.setThreads(n);                  // detectors loaded afterwards
//   const det = engine.loadModel(bytes);                    // throws FlawlensError
//   const r = det.detect(rgba, width, height, 'rgba', roi); // {score, anomalous, map, ...}
//   det.dispose();
//
//   const t = engine.createTeacher(backboneOrTaughtModelBytes, { seed, dims });
//   t.addFrame(rgba, width, height, 'rgba', roi, group);    // {images}
//   const r = t.fit({ name, created, sensitivity, card }, (fraction) => ...);
//   // r = {bytes: Uint8Array (a model file), calibration, images, groups, warnings, ...}
//   t.dispose();
//
// Every C++ error comes back as "code: message" and becomes a FlawlensError
// here, in check(), and nowhere else.

import { kMaxThreads } from './threads.mjs';

export class FlawlensError extends Error {
  constructor(message, code = 'error') {
    super(message);
    this.name = 'FlawlensError';
    this.code = code;
  }
}

// "bad_shape: tensor 'x' ..." -> FlawlensError(message, 'bad_shape')
function check(result) {
  if (result === '') return;
  const i = result.indexOf(': ');
  const code = i > 0 ? result.slice(0, i) : 'error';
  throw new FlawlensError(i > 0 ? result.slice(i + 2) : result, code);
}

// The smallest module using a v128 instruction (i32x4.splat + drop): validates
// only where WebAssembly SIMD is supported.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10, 9, 1, 7, 0, 65, 0, 253, 17, 26, 11,
]);

export function simdSupported() {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

const STATS = {
  score: 0, rawScore: 1, threshold: 2, anomalous: 3, mapWidth: 4, mapHeight: 5,
  x: 6, y: 7, w: 8, h: 9, preprocessMs: 10, networkMs: 11, postprocessMs: 12, totalMs: 13,
};

const FORMAT_BPP = { rgba: 4, rgb: 3, gray: 1 };

// Checks an image and copies it into the core's input buffer (shared by the
// detector and the teacher, whose C++ sides read the same buffer layout).
function copyPixels(core, pixels, width, height, format) {
  const bpp = FORMAT_BPP[format];
  if (!bpp) throw new FlawlensError(`pixel format must be rgba, rgb or gray, got '${format}'`, 'invalid_argument');
  if (!(pixels instanceof Uint8Array || pixels instanceof Uint8ClampedArray)) {
    throw new FlawlensError('pixels must be a Uint8Array or Uint8ClampedArray', 'invalid_argument');
  }
  const need = width * height * bpp;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0 || pixels.length < need) {
    throw new FlawlensError(`expected ${width}x${height}x${bpp} = ${need} bytes, got ${pixels.length}`, 'invalid_argument');
  }
  const view = core.buffer(need);
  if (view === null) throw new FlawlensError(`image of ${need} bytes is too large`, 'limit_exceeded');
  view.set(pixels.length === need ? pixels : pixels.subarray(0, need));
}

export class Detector {
  #core;
  #info;

  constructor(core) {
    this.#core = core;
    this.#info = JSON.parse(core.info());
  }

  get info() { return this.#info; }
  get threshold() { return this.#live().threshold(); }
  set threshold(t) {
    if (!Number.isFinite(t)) throw new FlawlensError('threshold must be a finite number', 'invalid_argument');
    this.#live().setThreshold(t);
  }
  resetThreshold() { this.#live().resetThreshold(); }

  // The threshold's meaning, by the C++ rule (src/fit/threshold.h): the
  // estimated share of new good parts flagged at threshold t (NaN when the
  // model carries no good-score summary), and its words ("about 1 in 50 good
  // parts").
  falseAlarmRate(t) { return this.#live().falseAlarmRate(t); }
  describeRate(rate) { return this.#live().constructor.describeRate(rate); }

  // "Calibrate here": the threshold at which about `rate` of good parts are
  // flagged, from the scores of good frames. Returns {threshold, rate,
  // frames, extrapolated, warnings}; throws FlawlensError.
  thresholdForScores(scores, rate) {
    const core = this.#live();
    const view = core.floats(scores.length);
    if (view === null) throw new FlawlensError('too many scores', 'limit_exceeded');
    view.set(scores);
    const json = core.thresholdForScores(scores.length, rate);
    if (json === '') check(core.lastError());
    return JSON.parse(json);
  }

  // pixels: Uint8Array | Uint8ClampedArray with width*height*bpp bytes.
  // roi: {x, y, w, h} in pixels of this image, or null for the whole image.
  detect(pixels, width, height, format = 'rgba', roi = null) {
    const core = this.#live();
    copyPixels(core, pixels, width, height, format);
    const r = roi || { x: 0, y: 0, w: 0, h: 0 };
    check(core.detect(width, height, format, r.x, r.y, r.w, r.h));
    return this.#result(core);
  }

  // bytes: an encoded PNG / JPEG / BMP, decoded by the C++ core.
  detectEncoded(bytes) {
    const core = this.#live();
    const view = core.buffer(bytes.length);
    if (view === null) throw new FlawlensError(`file of ${bytes.length} bytes is too large`, 'limit_exceeded');
    view.set(bytes);
    const err = core.detectEncoded();
    core.releaseBytes();
    check(err);
    return this.#result(core);
  }

  // Raw network (benchmarks): NHWC Float32Array in -> Float32Array out.
  runNetwork(input) {
    const core = this.#live();
    const view = core.floats(input.length);
    if (view === null) throw new FlawlensError('network input too large', 'limit_exceeded');
    view.set(input);
    check(core.runNetwork());
    return core.output().slice();
  }

  dispose() {
    if (this.#core) {
      this.#core.delete();
      this.#core = null;
    }
  }

  #live() {
    if (!this.#core) throw new FlawlensError('this detector was disposed', 'invalid_argument');
    return this.#core;
  }

  #result(core) {
    const s = core.stats();  // fresh views: memory growth detaches old ones
    return {
      score: s[STATS.score],
      rawScore: s[STATS.rawScore],
      threshold: s[STATS.threshold],
      anomalous: s[STATS.anomalous] !== 0,
      map: core.map().slice(),
      mapWidth: s[STATS.mapWidth],
      mapHeight: s[STATS.mapHeight],
      mapRect: { x: s[STATS.x], y: s[STATS.y], w: s[STATS.w], h: s[STATS.h] },
      mapLow: this.#info.mapLow,
      mapHigh: this.#info.mapHigh,
      timings: {
        preprocessMs: s[STATS.preprocessMs],
        networkMs: s[STATS.networkMs],
        postprocessMs: s[STATS.postprocessMs],
        totalMs: s[STATS.totalMs],
      },
    };
  }
}

// Teaching (src/api/web_teacher.h): fits a detector on good frames with the
// frozen features of a backbone model (or of a taught model). Error codes
// besides the core's: no_backbone, black_frame, frozen_frame, too_few,
// degenerate.
export class Teacher {
  #core;
  #info;

  constructor(core) {
    this.#core = core;
    this.#info = JSON.parse(core.info());
  }

  // {mapWidth, mapHeight, dims, featureChannels, featureNode, minImages, backbone: {name, licence}}
  get info() { return this.#info; }
  get images() { return this.#live().images(); }

  // pixels: Uint8Array | Uint8ClampedArray with width*height*bpp bytes.
  // roi: {x, y, w, h} in pixels of this frame, or null for the whole frame.
  // group: '' for a camera frame (checked in contiguous time blocks), else a
  // name shared by the photos of one part (e.g. its file name).
  // Returns {images}.
  addFrame(pixels, width, height, format = 'rgba', roi = null, group = '') {
    const core = this.#live();
    copyPixels(core, pixels, width, height, format);
    const r = roi || { x: 0, y: 0, w: 0, h: 0 };
    check(core.addFrame(width, height, format, r.x, r.y, r.w, r.h, String(group ?? '')));
    return { images: core.images() };
  }

  // options: {name, created, sensitivity, density, card} (card: an object
  // merged into the model card). onProgress(fraction) is called while fitting
  // (synchronously: this call blocks until the fit is done).
  // Returns {bytes: Uint8Array (a copy), calibration: {offset, scale, threshold,
  // mapLow, mapHigh, falseAlarmRate, goodImages, goodGroups}, images, groups,
  // folds, meanShrinkage, warnings}.
  fit(options = {}, onProgress = null) {
    const core = this.#live();
    let json;
    try {
      json = JSON.stringify(options ?? {});
    } catch (e) {
      throw new FlawlensError(`fit options cannot be written as JSON (${e.message})`, 'invalid_argument');
    }
    const cb = typeof onProgress === 'function'
      ? (f) => { try { onProgress(f); } catch { /* a progress display must not break the fit */ } }
      : null;
    check(core.fit(json, cb));
    const bytes = core.model().slice();  // fresh view, copied out of wasm memory
    core.releaseModel();
    return { bytes, ...JSON.parse(core.result()) };
  }

  dispose() {
    if (this.#core) {
      this.#core.delete();
      this.#core = null;
    }
  }

  #live() {
    if (!this.#core) throw new FlawlensError('this teacher was disposed', 'invalid_argument');
    return this.#core;
  }
}

export class Engine {
  #module;
  #threads = 1;  // what detectors and teachers made from now on split their ops over
  constructor(module) { this.#module = module; }

  // Throws FlawlensError; nothing else changes on failure.
  loadModel(bytes, { backend = 'auto' } = {}) {
    if (!(bytes instanceof Uint8Array)) {
      throw new FlawlensError('a model must be given as a Uint8Array', 'invalid_argument');
    }
    const core = new this.#module.Detector();
    try {
      const view = core.buffer(bytes.length);
      if (view === null) throw new FlawlensError(`model file of ${bytes.length} bytes is too large`, 'limit_exceeded');
      view.set(bytes);
      check(core.load(backend, this.#threads));
      return new Detector(core);
    } catch (e) {
      core.delete();
      throw e;
    }
  }

  // bytes: a backbone model file or a model taught before. options: {seed, dims}.
  // Throws FlawlensError ('no_backbone' for a model without a backbone).
  createTeacher(bytes, { seed, dims } = {}) {
    if (!(bytes instanceof Uint8Array)) {
      throw new FlawlensError('a model must be given as a Uint8Array', 'invalid_argument');
    }
    const core = new this.#module.Teacher();
    try {
      const view = core.buffer(bytes.length);
      if (view === null) throw new FlawlensError(`model file of ${bytes.length} bytes is too large`, 'limit_exceeded');
      view.set(bytes);
      check(core.begin(JSON.stringify({ seed, dims, threads: this.#threads })));
      return new Teacher(core);
    } catch (e) {
      core.delete();
      throw e;
    }
  }

  // True for the threaded module (flawlens-core-mt) where threads can run.
  get threaded() {
    const m = this.#module;
    return typeof m.threadsAvailable === 'function' && m.threadsAvailable();
  }

  // Threads the executors of detectors and teachers created from now on
  // split their ops over (1 in the single-thread module).
  get threads() { return this.#threads; }

  // Returns the count now in force. An executor plans its row bands once, at
  // load: detectors loaded before keep theirs. Throws 'unsupported' for n > 1
  // in the single-thread module.
  setThreads(n) {
    if (!Number.isInteger(n) || n < 1) {
      throw new FlawlensError(`threads must be a whole number >= 1, got ${n}`, 'invalid_argument');
    }
    if (!this.threaded) {
      if (n === 1) return 1;
      throw new FlawlensError('this engine module has no threads (flawlens-core-mt needs a cross-origin isolated page)',
                              'unsupported');
    }
    this.#threads = Math.min(n, kMaxThreads);
    return this.#threads;
  }

  // Stops the threaded module's worker threads (under node they would keep
  // the process alive). The engine must not be used afterwards.
  close() {
    this.#module.PThread?.terminateAllThreads();
  }

  // Size of the wasm memory, and bytes malloc'd and not freed (leak checks).
  get memoryBytes() { return this.#module.HEAP8.buffer.byteLength; }
  get heapInUse() { return this.#module.heapInUse(); }
}

// moduleUrl: URL of flawlens-core.mjs (or flawlens-core-mt.mjs). wasmBinary:
// optional bytes (Node). wasmModule: optional WebAssembly.Module compiled
// from the module's .wasm by the caller (started in parallel with loading
// the JS). threads: for the threaded module, the thread count to start with.
export async function createEngine({ moduleUrl, wasmBinary, wasmModule, threads } = {}) {
  if (typeof WebAssembly !== 'object') {
    throw new FlawlensError('This browser has no WebAssembly support; flawlens needs it.', 'unsupported');
  }
  if (!simdSupported()) {
    throw new FlawlensError(
      'This browser does not support WebAssembly SIMD (128-bit). flawlens needs it: use a current ' +
      'Chrome, Edge, Firefox or Safari 16.4+.', 'unsupported');
  }
  let factory;
  try {
    factory = (await import(moduleUrl ?? new URL('../flawlens-core.mjs', import.meta.url).href)).default;
  } catch (e) {
    throw new FlawlensError(`could not load the flawlens engine (${e.message})`, 'unsupported');
  }
  const options = {};
  if (wasmBinary) options.wasmBinary = wasmBinary;
  // Emscripten never settles its promise when its instantiateWasm hook fails: this does.
  let instantiateFailed = null;
  const failure = new Promise((_, reject) => { instantiateFailed = reject; });
  if (wasmModule) {
    // Emscripten's hook: instantiate the module compiled already (the
    // threaded module hands it on to its pthread workers).
    options.instantiateWasm = (imports, receiveInstance) => {
      WebAssembly.instantiate(wasmModule, imports).then((instance) => receiveInstance(instance, wasmModule),
                                                        instantiateFailed);
      return {};
    };
  }
  try {
    const module = await Promise.race([factory(options), failure]);
    const engine = new Engine(module);
    if (threads !== undefined && threads !== null) engine.setThreads(threads);
    return engine;
  } catch (e) {
    if (e instanceof FlawlensError) throw e;
    throw new FlawlensError(`could not start the flawlens engine (${e.message ?? e})`, 'unsupported');
  }
}
