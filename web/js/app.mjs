// flawlens page: wires the UI to the inference worker. All inference runs in
// js/worker.mjs; this module decodes nothing heavier than thumbnails and only
// ever has one camera frame in flight (frames are dropped while busy).

import { EngineClient } from './worker-client.mjs';
import { paintMap, drawMapOver } from './colormap.mjs';
import { thresholdFromGoodScores } from './calibrate.mjs';
import { toCsv, round } from './csv.mjs';
import { hashBytes, modelKey, loadThreshold, saveThreshold, clearThreshold } from './storage.mjs';

const $ = (id) => document.getElementById(id);
const kImageExt = /\.(png|jpe?g|bmp|webp|gif)$/i;
const kModelExt = /\.safetensors$/i;
const kMaxCaptureSide = 640;
const kSparkPoints = 150;

const el = {
  engineBadge: $('engine-badge'), modelBadge: $('model-badge'),
  status: $('status'), alert: $('alert'), alertText: $('alert-text'), alertClose: $('alert-close'),
  announce: $('live-announce'),
  modelInput: $('model-input'), modelCard: $('model-card'),
  cameraSelect: $('camera-select'), cameraToggle: $('camera-toggle'),
  stage: $('stage'), video: $('video'), overlay: $('overlay'),
  liveScore: $('live-score'), liveVerdict: $('live-verdict'), sparkline: $('sparkline'),
  liveFps: $('live-fps'), liveLatency: $('live-latency'), liveEngine: $('live-engine'),
  freezeBtn: $('freeze-btn'), snapshotBtn: $('snapshot-btn'), roiCenterBtn: $('roi-center-btn'),
  roiClearBtn: $('roi-clear-btn'), liveOpacity: $('live-opacity'),
  thrRange: $('threshold-range'), thrNumber: $('threshold-number'), thrSource: $('threshold-source'),
  thrReset: $('threshold-reset'), calibSeconds: $('calib-seconds'), calibBtn: $('calib-btn'),
  calibProgress: $('calib-progress'),
  imageInput: $('image-input'), demoBtn: $('demo-btn'), csvBtn: $('csv-btn'), clearBtn: $('clear-btn'),
  dropzone: $('dropzone'), gallery: $('gallery'), galleryCount: $('gallery-count'),
  galleryProgress: $('gallery-progress'),
  detail: $('detail'), detailTitle: $('detail-title'), detailClose: $('detail-close'),
  detailSummary: $('detail-summary'), detailOriginal: $('detail-original'), detailOverlay: $('detail-overlay'),
  detailOpacity: $('detail-opacity'), detailPrev: $('detail-prev'), detailNext: $('detail-next'),
};

const state = {
  client: null,
  engineReady: false,
  engineError: null,
  model: null,          // {info, name, hash, key, fileName, generation}
  modelGeneration: 0,
  threshold: NaN,
  thresholdSource: 'model',
  calibration: null,    // stored calibration record for this model
  items: [],            // gallery items
  nextItemId: 1,
  jobs: Promise.resolve(),
  detailId: null,
  camera: {
    stream: null, running: false, frozen: false, inFlight: false, frameHandle: 0, roiGen: 0,
    captureW: 0, captureH: 0, roi: null, drag: null, last: null,
    resultTimes: [], scores: [], latencies: [], lastVerdict: null, lastAnnounce: 0,
    calib: null, mapCanvas: document.createElement('canvas'), mapScratch: {},
  },
};

// Test / benchmark hook (read-only view; the page does not depend on it).
const debug = {
  liveLog: [], firstScoreAt: null, modelLoadedAt: null, errors: [], framesSeen: 0, framesDropped: 0,
  get modelInfo() { return state.model ? state.model.info : null; },
  get threshold() { return state.threshold; },
  get gallery() {
    return sortedItems().map((it) => ({ name: it.name, score: it.score, anomalous: isAnomalous(it), source: it.source }));
  },
  stats: () => (state.client ? state.client.call('stats') : Promise.resolve(null)),
};
window.__flawlens = debug;

// ---------------------------------------------------------------- messages
let statusTimer = 0;
function setStatus(message, { sticky = false } = {}) {
  el.status.textContent = message;
  clearTimeout(statusTimer);
  if (!sticky && message) statusTimer = setTimeout(() => { el.status.textContent = ''; }, 8000);
}

function showError(message) {
  debug.errors.push(message);
  console.warn('[flawlens]', message);
  el.alertText.textContent = message;
  el.alert.hidden = false;
}

function clearError() {
  el.alert.hidden = true;
  el.alertText.textContent = '';
}

el.alertClose.addEventListener('click', clearError);

function errText(e) {
  return (e && e.message) ? e.message : String(e);
}

function fmt(v, digits = 3) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return v.toFixed(digits);
}

function fmtCount(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

// ---------------------------------------------------------------- engine
async function startEngine() {
  setStatus('Starting the WebAssembly engine…', { sticky: true });
  try {
    state.client = new EngineClient(new URL('./worker.mjs', import.meta.url));
    state.client.onFatal = (e) => {
      state.engineReady = false;
      setBadge(el.engineBadge, 'error', 'Engine: failed');
      showError(`${errText(e)} Reload the page to restart it.`);
    };
    const moduleUrl = new URL('../flawlens-core.mjs', import.meta.url).href;
    const r = await state.client.call('init', { moduleUrl });
    state.engineReady = true;
    setBadge(el.engineBadge, 'ok', r.simd ? 'Engine: WebAssembly SIMD' : 'Engine: WebAssembly');
    performance.mark('flawlens:engine-ready');
    return true;
  } catch (e) {
    state.engineError = e;
    setBadge(el.engineBadge, 'error', 'Engine: unavailable');
    const msg = errText(e);
    showError(`The detection engine could not start: ${msg}` + (/SIMD|WebAssembly support/.test(msg) ? ''
      : ' Reload the page; if this keeps happening, the site\'s flawlens-core.wasm is missing or damaged.'));
    setStatus('');
    return false;
  }
}

function setBadge(badge, stateName, text) {
  badge.dataset.state = stateName;
  badge.textContent = text;
  badge.title = text;
}

function requireEngine() {
  if (!state.engineReady) {
    showError(state.engineError ? `The engine is not available: ${errText(state.engineError)}`
                                : 'The engine is still starting; try again in a moment.');
    return false;
  }
  if (!state.model) {
    showError('No model is loaded. Open a .safetensors model first.');
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- model
async function loadModelBytes(buffer, fileName, { isDefault = false } = {}) {
  if (!state.engineReady) {
    showError(`Cannot load "${fileName}": the engine is not available.`);
    return false;
  }
  const bytes = new Uint8Array(buffer);
  const hash = hashBytes(bytes);
  const previous = state.model;
  setStatus(`Loading model “${fileName}”…`, { sticky: true });
  let info;
  try {
    // Transfer a copy-free buffer; the worker keeps the previous detector if this fails.
    info = await state.client.call('loadModel', { bytes: buffer, backend: 'auto' }, [buffer]);
  } catch (e) {
    const keep = previous ? ` Still using “${previous.name}”.` : '';
    showError(`Could not load model “${fileName}”: ${errText(e)}.${keep}`.replace('..', '.'));
    setStatus('');
    if (!previous) setBadge(el.modelBadge, 'error', 'Model: none');
    return false;
  }
  const name = info.name || fileName;
  const key = modelKey(name, hash);
  state.modelGeneration += 1;
  state.model = { info, name, hash, key, fileName, isDefault, generation: state.modelGeneration };
  debug.modelLoadedAt = performance.now();
  performance.mark('flawlens:model-ready');
  setBadge(el.modelBadge, 'ok', `Model: ${name}`);
  renderModelCard();
  const stored = loadThreshold(key);
  state.calibration = stored;
  setupThresholdRange(info.threshold, stored ? stored.threshold : info.threshold);
  await applyThreshold(stored ? stored.threshold : info.threshold,
                       stored ? (stored.manual ? 'manual' : 'calibrated') : 'model');
  clearCameraHistory();
  updateControls();
  setStatus(`Model “${name}” loaded (${info.inputWidth}×${info.inputHeight}, ${info.backend || 'auto'} backend).`);
  if (previous) clearError();
  if (state.items.length) rescoreGallery();
  return true;
}

async function loadDefaultModel() {
  const url = new URL('../model/default.safetensors', import.meta.url);
  let buffer;
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    buffer = await res.arrayBuffer();
  } catch (e) {
    setBadge(el.modelBadge, 'error', 'Model: none');
    showError(`The default model (model/default.safetensors) could not be downloaded: ${errText(e)}. ` +
              'Open a model file with “Open model…”.');
    el.modelCard.replaceChildren(textEl('p', 'No model loaded.', 'hint'));
    return false;
  }
  return loadModelBytes(buffer, 'default.safetensors', { isDefault: true });
}

async function openModelFile(file) {
  if (!file) return;
  if (file.size === 0) {
    showError(`“${file.name}” is empty; it is not a model file.${state.model ? ` Still using “${state.model.name}”.` : ''}`);
    return;
  }
  let buffer;
  try {
    buffer = await file.arrayBuffer();
  } catch (e) {
    showError(`Could not read “${file.name}”: ${errText(e)}`);
    return;
  }
  await loadModelBytes(buffer, file.name);
}

el.modelInput.addEventListener('change', () => {
  const file = el.modelInput.files[0];
  el.modelInput.value = '';
  openModelFile(file);
});

function textEl(tag, text, className) {
  const n = document.createElement(tag);
  n.textContent = text;
  if (className) n.className = className;
  return n;
}

function addRow(dl, label, value) {
  if (value === undefined || value === null || value === '') return;
  dl.append(textEl('dt', label), textEl('dd', String(value)));
}

function scalarText(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : fmt(v, 4);
  if (typeof v === 'string' || typeof v === 'boolean') return String(v);
  return null;
}

// The card's `recalibrations` list (written by `flawlens calibrate`): the
// latest entry, e.g. "2026-11-29T23:27:24Z on 30 good images (2 times)".
function recalibrationText(list) {
  if (!Array.isArray(list) || list.length === 0) return null;
  const last = list[list.length - 1];
  if (!last || typeof last !== 'object') return null;
  const images = scalarText(last.images);
  const text = `${scalarText(last.at) ?? 'yes'}${images !== null ? ` on ${images} good images` : ''}`;
  return list.length > 1 ? `${text} (${list.length} times)` : text;
}

function renderModelCard() {
  const { info, name, hash, fileName } = state.model;
  const card = (info.card && typeof info.card === 'object') ? info.card : {};
  const root = document.createDocumentFragment();
  root.append(textEl('h3', name));
  const dl = document.createElement('dl');
  addRow(dl, 'File', fileName);
  addRow(dl, 'Input', `${info.inputWidth} × ${info.inputHeight} × ${info.inputChannels}`);
  addRow(dl, 'Heatmap', `${info.mapWidth} × ${info.mapHeight}`);
  addRow(dl, 'Fit', info.pixelScale > 0
    ? `fixed pixel scale ${fmt(info.pixelScale, 3)}: aspect ratio kept, heatmap over the image only`
    : 'stretched to the input');
  addRow(dl, 'Threshold', fmt(info.threshold, 4));
  addRow(dl, 'Recalibrated', recalibrationText(card.recalibrations));
  addRow(dl, 'Parameters', fmtCount(info.parameters));
  addRow(dl, 'Compute', info.macs ? `${fmtCount(info.macs)} MACs / frame` : null);
  addRow(dl, 'Backend', info.backend);
  const skip = new Set(['name', 'metrics', 'training']);
  for (const [k, v] of Object.entries(card)) {
    if (skip.has(k)) continue;
    const s = scalarText(v);
    if (s !== null) addRow(dl, k.replace(/_/g, ' '), s);
  }
  for (const section of ['training', 'metrics']) {
    const obj = card[section];
    if (!obj || typeof obj !== 'object') continue;
    for (const [k, v] of Object.entries(obj)) {
      const s = scalarText(v);
      if (s !== null) addRow(dl, `${section === 'metrics' ? '' : 'training '}${k.replace(/_/g, ' ')}`.trim(), s);
      else if (v && typeof v === 'object' && !Array.isArray(v)) {
        const parts = Object.entries(v).map(([k2, v2]) => {
          const s2 = scalarText(v2);
          return s2 === null ? null : `${k2.replace(/_/g, ' ')} ${s2}`;
        }).filter(Boolean);
        if (parts.length) addRow(dl, k.replace(/_/g, ' '), parts.join(' · '));
      }
    }
  }
  addRow(dl, 'Fingerprint', hash);
  root.append(dl);
  const details = document.createElement('details');
  details.append(textEl('summary', 'Full model card'), textEl('pre', JSON.stringify(card, null, 2)));
  root.append(details);
  el.modelCard.replaceChildren(root);
}

// ---------------------------------------------------------------- threshold
function setupThresholdRange(modelThr, current) {
  const spread = Math.max(Math.abs(modelThr), 1e-3);
  let lo = Math.min(0, modelThr - 2 * spread), hi = modelThr + 3 * spread;
  lo = Math.min(lo, current - spread * 0.5);
  hi = Math.max(hi, current + spread * 0.5);
  el.thrRange.min = String(lo);
  el.thrRange.max = String(hi);
  el.thrRange.step = String((hi - lo) / 1000);
  el.thrRange.disabled = false;
  el.thrNumber.disabled = false;
}

function extendRange(v) {
  const lo = Number(el.thrRange.min), hi = Number(el.thrRange.max);
  if (v < lo || v > hi) {
    const nlo = Math.min(lo, v), nhi = Math.max(hi, v);
    el.thrRange.min = String(nlo);
    el.thrRange.max = String(nhi);
    el.thrRange.step = String((nhi - nlo) / 1000);
  }
}

async function applyThreshold(value, source) {
  if (!Number.isFinite(value) || !state.model) return;
  state.threshold = value;
  state.thresholdSource = source;
  extendRange(value);
  el.thrRange.value = String(value);
  if (document.activeElement !== el.thrNumber) el.thrNumber.value = round(value, 4);
  el.thrRange.setAttribute('aria-valuetext', fmt(value, 3));
  const modelThr = state.model.info.threshold;
  if (source === 'model') {
    el.thrSource.textContent = `Using the model's calibrated threshold (${fmt(modelThr, 3)}).`;
  } else if (source === 'calibrated' && state.calibration) {
    const c = state.calibration;
    const when = c.calibratedAt ? new Date(c.calibratedAt).toLocaleString() : 'earlier';
    el.thrSource.textContent = `Calibrated here (${when}, ${c.frames} good frames). Model value: ${fmt(modelThr, 3)}.`;
  } else {
    el.thrSource.textContent = `Set by hand (saved in this browser). Model value: ${fmt(modelThr, 3)}.`;
  }
  el.thrReset.disabled = source === 'model';
  refreshVerdicts();
  try {
    await state.client.call('setThreshold', { value });
  } catch (e) {
    showError(`Could not set the threshold: ${errText(e)}`);
  }
}

el.thrRange.addEventListener('input', () => {
  const v = Number(el.thrRange.value);
  applyThreshold(v, 'manual');
});
el.thrRange.addEventListener('change', () => persistManual());
el.thrNumber.addEventListener('change', () => {
  const v = Number(el.thrNumber.value);
  if (el.thrNumber.value.trim() === '' || !Number.isFinite(v)) {
    el.thrNumber.value = round(state.threshold, 4);
    showError('The threshold must be a number.');
    return;
  }
  applyThreshold(v, 'manual');
  persistManual();
});

function persistManual() {
  if (!state.model) return;
  state.calibration = { threshold: state.threshold, calibratedAt: new Date().toISOString(), frames: 0, manual: true };
  saveThreshold(state.model.key, state.calibration);
}

el.thrReset.addEventListener('click', async () => {
  if (!state.model) return;
  clearThreshold(state.model.key);
  state.calibration = null;
  await applyThreshold(state.model.info.threshold, 'model');
  setStatus(`Threshold reset to the model's value (${fmt(state.model.info.threshold, 3)}).`);
});

function isAnomalous(it) {
  return Number.isFinite(it.score) && it.score >= state.threshold;
}

function refreshVerdicts() {
  for (const it of state.items) {
    const node = it.node;
    if (!node) continue;
    const bad = isAnomalous(it);
    node.querySelector('.thumb').dataset.verdict = bad ? 'anomaly' : 'ok';
    const v = node.querySelector('.verdict');
    v.dataset.verdict = bad ? 'anomaly' : 'ok';
    v.textContent = bad ? 'Anomaly' : 'OK';
    node.querySelector('.thumb').setAttribute('aria-label', thumbLabel(it));
  }
  const last = state.camera.last;
  if (last) setLiveVerdict(last.score);
  drawSparkline();
  if (el.detail.open) renderDetail();
}

// ---------------------------------------------------------------- gallery
function sortedItems() {
  return [...state.items].sort((a, b) => (b.score - a.score) || (a.id - b.id));
}

function thumbLabel(it) {
  return `${it.name}: score ${fmt(it.score, 3)}, ${isAnomalous(it) ? 'anomaly' : 'OK'}. Open details.`;
}

function makeThumb(it) {
  const li = document.createElement('li');
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'thumb';
  const img = document.createElement('img');
  img.alt = '';
  img.decoding = 'async';
  img.loading = 'lazy';
  if (it.url) img.src = it.url;
  const meta = document.createElement('span');
  meta.className = 'meta';
  const name = textEl('span', it.name, 'name');
  name.title = it.name;
  const line = document.createElement('span');
  line.className = 'line';
  line.append(textEl('span', fmt(it.score, 3), 'score'), textEl('span', '', 'verdict'));
  meta.append(name, line);
  btn.append(img, meta);
  btn.addEventListener('click', () => openDetail(it.id));
  li.append(btn);
  it.node = li;
  return li;
}

let renderQueued = false;
function renderGallery() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const items = sortedItems();
    for (const it of items) {
      if (!it.node) makeThumb(it);
      it.node.querySelector('.score').textContent = fmt(it.score, 3);
    }
    el.gallery.replaceChildren(...items.map((it) => it.node));
    refreshVerdicts();
    el.galleryCount.textContent = String(items.length);
    el.csvBtn.disabled = items.length === 0;
    el.clearBtn.disabled = items.length === 0;
  });
}

function queueJob(fn) {
  const p = state.jobs.then(fn, fn);
  state.jobs = p.catch(() => {});
  return p;
}

async function scoreBlob(blob) {
  return state.client.call('detect', { blob, threshold: state.threshold });
}

function addFiles(files, source = 'file') {
  const list = [...files];
  const models = list.filter((f) => kModelExt.test(f.name));
  const images = list.filter((f) => !kModelExt.test(f.name));
  if (models.length) {
    if (models.length > 1) showError('Drop one model file at a time; loading the first one.');
    queueJob(() => openModelFile(models[0]));
  }
  if (!images.length) return Promise.resolve();
  return queueJob(async () => {
    if (!requireEngine()) return;
    const failures = [];
    let done = 0;
    el.galleryProgress.hidden = false;
    el.galleryProgress.max = images.length;
    el.galleryProgress.value = 0;
    setStatus(`Scoring ${images.length} image${images.length === 1 ? '' : 's'}…`, { sticky: true });
    for (const file of images) {
      try {
        if (file.size === 0) throw new Error('empty file');
        if (file.type && !file.type.startsWith('image/') && !kImageExt.test(file.name)) {
          throw new Error(`not an image file (${file.type})`);
        }
        const r = await scoreBlob(file);
        const it = {
          id: state.nextItemId++, name: file.name || `image-${state.nextItemId}`, blob: file,
          url: URL.createObjectURL(file), source, modelGeneration: state.model.generation, ...r,
        };
        state.items.push(it);
        if (debug.firstScoreAt === null) debug.firstScoreAt = performance.now();
        renderGallery();
      } catch (e) {
        failures.push(`${file.name || 'image'} (${errText(e)})`);
      }
      el.galleryProgress.value = ++done;
    }
    el.galleryProgress.hidden = true;
    const ok = images.length - failures.length;
    if (failures.length) {
      showError(`Could not score ${failures.length} of ${images.length} file${images.length === 1 ? '' : 's'}: ` +
                `${failures.slice(0, 5).join('; ')}${failures.length > 5 ? '; …' : ''}. The gallery is unchanged otherwise.`);
    }
    const anomalies = state.items.filter(isAnomalous).length;
    setStatus(`Scored ${ok} image${ok === 1 ? '' : 's'}. ${anomalies} of ${state.items.length} in the gallery flagged as anomalies.`);
  });
}

function rescoreGallery() {
  return queueJob(async () => {
    const gen = state.model.generation;
    setStatus(`Re-scoring ${state.items.length} images with “${state.model.name}”…`, { sticky: true });
    const failures = [];
    for (const it of state.items) {
      if (state.model.generation !== gen) return;
      try {
        const r = await scoreBlob(it.blob);
        Object.assign(it, r, { modelGeneration: gen });
      } catch (e) {
        failures.push(`${it.name} (${errText(e)})`);
        it.score = NaN;
      }
    }
    renderGallery();
    if (failures.length) showError(`Could not re-score: ${failures.join('; ')}`);
    setStatus(`Re-scored ${state.items.length} images with “${state.model.name}”.`);
  });
}

el.imageInput.addEventListener('change', () => {
  const files = [...el.imageInput.files];
  el.imageInput.value = '';
  addFiles(files);
});
el.dropzone.addEventListener('click', () => el.imageInput.click());
el.dropzone.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    el.imageInput.click();
  }
});

el.demoBtn.addEventListener('click', async () => {
  el.demoBtn.disabled = true;
  try {
    const base = new URL('../model/demo/', import.meta.url);
    const res = await fetch(new URL('index.json', base));
    if (!res.ok) throw new Error(`model/demo/index.json: HTTP ${res.status}`);
    const index = await res.json();
    const names = (Array.isArray(index) ? index : index.images || []).filter((n) => typeof n === 'string');
    if (!names.length) throw new Error('the demo folder lists no images');
    const files = [];
    for (const n of names) {
      const r = await fetch(new URL(encodeURIComponent(n), base));
      if (!r.ok) throw new Error(`${n}: HTTP ${r.status}`);
      const blob = await r.blob();
      files.push(new File([blob], n, { type: blob.type || 'image/png' }));
    }
    await addFiles(files, 'demo');
  } catch (e) {
    showError(`Could not load the demo images: ${errText(e)}`);
  } finally {
    el.demoBtn.disabled = false;
  }
});

el.clearBtn.addEventListener('click', () => {
  for (const it of state.items) if (it.url) URL.revokeObjectURL(it.url);
  state.items = [];
  renderGallery();
  setStatus('Gallery cleared.');
});

el.csvBtn.addEventListener('click', () => {
  const items = sortedItems();
  const header = ['rank', 'file', 'score', 'raw_score', 'threshold', 'verdict', 'width', 'height',
                  'map_max', 'model', 'source', 'total_ms'];
  const rows = items.map((it, i) => {
    let mapMax = -Infinity;
    for (const v of it.map) if (v > mapMax) mapMax = v;
    return [i + 1, it.name, round(it.score, 5), round(it.rawScore, 5), round(state.threshold, 5),
            isAnomalous(it) ? 'anomaly' : 'ok', it.width, it.height, round(mapMax, 5),
            state.model ? state.model.name : '', it.source, round(it.timings ? it.timings.totalMs : NaN, 2)];
  });
  const blob = new Blob([toCsv(header, rows)], { type: 'text/csv' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `flawlens-results-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  setStatus(`Exported ${rows.length} rows as CSV.`);
});

// ---------------------------------------------------------------- drag and drop (whole page)
let dragDepth = 0;
const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
document.addEventListener('dragenter', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth += 1;
  document.body.classList.add('dragging');
});
document.addEventListener('dragover', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = 'copy';
});
document.addEventListener('dragleave', () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) document.body.classList.remove('dragging');
});
document.addEventListener('drop', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  document.body.classList.remove('dragging');
  addFiles(e.dataTransfer.files);
});

// ---------------------------------------------------------------- detail view
const detailCache = { id: null, bitmap: null };

function openDetail(id) {
  state.detailId = id;
  renderDetail();
  if (!el.detail.open) el.detail.showModal();
}

async function renderDetail() {
  const it = state.items.find((x) => x.id === state.detailId);
  if (!it) { if (el.detail.open) el.detail.close(); return; }
  const bad = isAnomalous(it);
  el.detailTitle.textContent = it.name;
  const verdict = textEl('span', bad ? 'Anomaly' : 'OK', 'verdict');
  verdict.dataset.verdict = bad ? 'anomaly' : 'ok';
  el.detailSummary.replaceChildren(
    verdict,
    textEl('span', `Score ${fmt(it.score, 3)} (threshold ${fmt(state.threshold, 3)})`),
    textEl('span', it.width ? `${it.width} × ${it.height} px` : ''),
    textEl('span', it.timings ? `${fmt(it.timings.totalMs, 1)} ms` : ''),
  );
  const items = sortedItems();
  const idx = items.findIndex((x) => x.id === it.id);
  el.detailPrev.disabled = idx <= 0;
  el.detailNext.disabled = idx >= items.length - 1;
  // Decode once per opened image (the opacity slider redraws often).
  let bitmap = detailCache.id === it.id ? detailCache.bitmap : null;
  if (detailCache.id !== it.id) {
    try {
      bitmap = await createImageBitmap(it.blob);
    } catch {
      bitmap = null;
    }
    if (state.detailId !== it.id) { if (bitmap) bitmap.close(); return; }
    if (detailCache.bitmap) detailCache.bitmap.close();
    detailCache.id = it.id;
    detailCache.bitmap = bitmap;
  }
  const w = bitmap ? bitmap.width : (it.width || 256), h = bitmap ? bitmap.height : (it.height || 256);
  for (const c of [el.detailOriginal, el.detailOverlay]) {
    c.width = w;
    c.height = h;
    const ctx = c.getContext('2d');
    ctx.clearRect(0, 0, w, h);
    if (bitmap) ctx.drawImage(bitmap, 0, 0);
  }
  const ctx = el.detailOverlay.getContext('2d');
  const mapCanvas = document.createElement('canvas');
  paintMap(mapCanvas, it.map, it.mapWidth, it.mapHeight, it.mapLow, it.mapHigh);
  const sx = it.width ? w / it.width : 1, sy = it.height ? h / it.height : 1;
  drawMapOver(ctx, mapCanvas, it.mapRect, sx, sy, Number(el.detailOpacity.value));
  ctx.save();
  ctx.strokeStyle = 'rgba(255,255,255,0.7)';
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = Math.max(1, w / 300);
  ctx.strokeRect(it.mapRect.x * sx, it.mapRect.y * sy, it.mapRect.w * sx, it.mapRect.h * sy);
  ctx.restore();
}

function stepDetail(delta) {
  const items = sortedItems();
  const idx = items.findIndex((x) => x.id === state.detailId);
  const next = items[idx + delta];
  if (next) openDetail(next.id);
}

el.detailClose.addEventListener('click', () => el.detail.close());
el.detailPrev.addEventListener('click', () => stepDetail(-1));
el.detailNext.addEventListener('click', () => stepDetail(1));
el.detailOpacity.addEventListener('input', () => renderDetail());
el.detail.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLInputElement) return;
  if (e.key === 'ArrowLeft') { e.preventDefault(); stepDetail(-1); }
  if (e.key === 'ArrowRight') { e.preventDefault(); stepDetail(1); }
});
el.detail.addEventListener('click', (e) => { if (e.target === el.detail) el.detail.close(); });
el.detail.addEventListener('close', () => {
  if (detailCache.bitmap) detailCache.bitmap.close();
  detailCache.id = null;
  detailCache.bitmap = null;
  const it = state.items.find((x) => x.id === state.detailId);
  if (it && it.node) it.node.querySelector('.thumb').focus();
});

// ---------------------------------------------------------------- camera
const cam = state.camera;

function cameraErrorMessage(e) {
  const name = e && e.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'Camera access was denied. Allow the camera for this page in the browser (address bar or site settings) ' +
           'and press “Start camera” again. Image uploads keep working.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') {
    return 'No camera was found (or the chosen one is not available). Connect a camera or pick another one. ' +
           'Image uploads keep working.';
  }
  if (name === 'NotReadableError' || name === 'AbortError') {
    return 'The camera is busy or could not be started (another app may be using it). Image uploads keep working.';
  }
  return `The camera could not be started: ${errText(e)}. Image uploads keep working.`;
}

async function refreshCameraList() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  let devices = [];
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
  } catch {
    return;
  }
  const current = el.cameraSelect.value;
  const opts = [new Option('Default camera', '')];
  opts.push(new Option('Back camera (tablet/phone)', 'facing:environment'));
  opts.push(new Option('Front camera (tablet/phone)', 'facing:user'));
  devices.forEach((d, i) => {
    if (d.deviceId) opts.push(new Option(d.label || `Camera ${i + 1}`, `device:${d.deviceId}`));
  });
  el.cameraSelect.replaceChildren(...opts);
  if ([...el.cameraSelect.options].some((o) => o.value === current)) el.cameraSelect.value = current;
}

function videoConstraints() {
  const v = el.cameraSelect.value;
  const c = { width: { ideal: 640 }, height: { ideal: 480 } };
  if (v.startsWith('device:')) c.deviceId = { exact: v.slice(7) };
  else if (v.startsWith('facing:')) c.facingMode = { ideal: v.slice(7) };
  return c;
}

async function startCamera() {
  if (cam.running) return;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError('This browser gives no camera access here (a camera needs https or localhost). Image uploads keep working.');
    return;
  }
  el.cameraToggle.disabled = true;
  setStatus('Starting the camera…', { sticky: true });
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(), audio: false });
  } catch (e) {
    el.cameraToggle.disabled = false;
    setStatus('');
    showError(cameraErrorMessage(e));
    return;
  }
  cam.stream = stream;
  el.video.srcObject = stream;
  try {
    await el.video.play();
  } catch (e) {
    stopCamera();
    showError(`The camera video could not play: ${errText(e)}`);
    el.cameraToggle.disabled = false;
    return;
  }
  for (const track of stream.getVideoTracks()) {
    track.addEventListener('ended', () => {
      if (cam.stream === stream) {
        stopCamera();
        showError('The camera stopped (unplugged or taken by another app). Press “Start camera” to try again.');
      }
    });
  }
  const vw = el.video.videoWidth || 640, vh = el.video.videoHeight || 480;
  const s = Math.min(1, kMaxCaptureSide / Math.max(vw, vh));
  cam.captureW = Math.max(2, Math.round(vw * s));
  cam.captureH = Math.max(2, Math.round(vh * s));
  el.overlay.width = cam.captureW;
  el.overlay.height = cam.captureH;
  el.stage.style.setProperty('--ar', String(vw / vh));
  cam.running = true;
  cam.frozen = false;
  cam.errors = 0;
  cam.roi = null;  // the picture size may have changed
  clearCameraHistory();
  el.stage.dataset.state = 'on';
  el.stage.dataset.frozen = 'false';
  el.cameraToggle.textContent = 'Stop camera';
  el.cameraToggle.setAttribute('aria-pressed', 'true');
  el.cameraToggle.disabled = false;
  el.freezeBtn.setAttribute('aria-pressed', 'false');
  el.freezeBtn.textContent = 'Freeze';
  updateControls();
  clearError();
  setStatus(`Camera on (${vw}×${vh}).`);
  refreshCameraList();
  scheduleFrame();
}

function stopCamera() {
  if (cam.stream) for (const t of cam.stream.getTracks()) t.stop();
  cam.stream = null;
  cam.running = false;
  cam.frozen = false;
  if (cam.calib) finishCalibration(true);
  el.video.srcObject = null;
  el.stage.dataset.state = 'off';
  el.stage.dataset.frozen = 'false';
  el.cameraToggle.textContent = 'Start camera';
  el.cameraToggle.setAttribute('aria-pressed', 'false');
  const ctx = el.overlay.getContext('2d');
  ctx.clearRect(0, 0, el.overlay.width, el.overlay.height);
  el.liveFps.textContent = '—';
  el.liveLatency.textContent = '—';
  updateControls();
}

el.cameraToggle.addEventListener('click', () => (cam.running ? stopCamera() : startCamera()));
el.cameraSelect.addEventListener('change', async () => {
  if (cam.running) {
    stopCamera();
    await startCamera();
  }
});
if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
  navigator.mediaDevices.addEventListener('devicechange', refreshCameraList);
}

function scheduleFrame() {
  if (!cam.running) return;
  if (el.video.requestVideoFrameCallback) cam.frameHandle = el.video.requestVideoFrameCallback(onVideoFrame);
  else cam.frameHandle = requestAnimationFrame(onVideoFrame);
}

async function onVideoFrame() {
  if (!cam.running) return;
  scheduleFrame();
  debug.framesSeen += 1;
  // Drop the frame if the worker is still busy with the previous one.
  if (cam.inFlight) { debug.framesDropped += 1; return; }
  if (cam.frozen) return;
  await detectFrame(false);
}

// Scores the video's current frame. A result is dropped if, while it was being
// computed, the model or the region of interest changed, or the picture was
// frozen (the frozen picture keeps the result it had) — unless `forFrozen`:
// the one detection of a picture frozen before it had any result.
async function detectFrame(forFrozen) {
  if (!state.engineReady || !state.model || el.video.readyState < 2) return;
  cam.inFlight = true;
  const t0 = performance.now();
  const gen = state.model.generation;
  const roiGen = cam.roiGen;
  try {
    const bitmap = await createImageBitmap(el.video, {
      resizeWidth: cam.captureW, resizeHeight: cam.captureH, resizeQuality: 'medium',
    });
    const r = await state.client.call('detect', { bitmap, roi: cam.roi, threshold: state.threshold }, [bitmap]);
    if (!cam.running || !state.model || state.model.generation !== gen) return;
    if (cam.roiGen !== roiGen || cam.frozen !== forFrozen) return;
    cam.errors = 0;
    onLiveResult(r, performance.now() - t0);
  } catch (e) {
    // One bad frame is skipped; a run of failures stops the camera with a message.
    cam.errors = (cam.errors || 0) + 1;
    if (cam.running && cam.errors === 1) showError(`Live detection failed on a frame: ${errText(e)}`);
    if (cam.running && cam.errors >= 10) {
      showError(`Live detection keeps failing, camera stopped: ${errText(e)}`);
      stopCamera();
    }
  } finally {
    cam.inFlight = false;
  }
}

function onLiveResult(r, latencyMs) {
  const now = performance.now();
  cam.last = r;
  cam.resultTimes.push(now);
  while (cam.resultTimes.length && now - cam.resultTimes[0] > 2000) cam.resultTimes.shift();
  cam.latencies.push(latencyMs);
  if (cam.latencies.length > 30) cam.latencies.shift();
  cam.scores.push(r.score);
  if (cam.scores.length > kSparkPoints) cam.scores.shift();
  if (debug.firstScoreAt === null) debug.firstScoreAt = now;
  debug.liveLog.push({ t: now, score: r.score, anomalous: r.score >= state.threshold, latencyMs, totalMs: r.timings.totalMs });
  if (debug.liveLog.length > 5000) debug.liveLog.splice(0, 1000);
  if (cam.calib) {
    cam.calib.scores.push(r.score);
    const frac = Math.min(1, (now - cam.calib.start) / cam.calib.durationMs);
    el.calibProgress.value = frac;
    if (frac >= 1) finishCalibration(false);
  }
  el.liveScore.textContent = fmt(r.score, 3);
  setLiveVerdict(r.score);
  const n = cam.resultTimes.length;
  const fps = n > 1 ? ((n - 1) * 1000) / (cam.resultTimes[n - 1] - cam.resultTimes[0]) : 0;
  el.liveFps.textContent = fps > 0 ? fps.toFixed(1) : '—';
  const lat = [...cam.latencies].sort((a, b) => a - b)[cam.latencies.length >> 1];
  el.liveLatency.textContent = `${lat.toFixed(0)} ms`;
  el.liveEngine.textContent = `${fmt(r.timings.totalMs, 1)} ms`;
  drawOverlay();
  drawSparkline();
}

function setLiveVerdict(score) {
  const bad = score >= state.threshold;
  el.liveVerdict.dataset.verdict = bad ? 'anomaly' : 'ok';
  el.liveVerdict.textContent = bad ? 'Anomaly' : 'OK';
  const now = performance.now();
  if (cam.lastVerdict !== bad && now - cam.lastAnnounce > 2500) {
    el.announce.textContent = bad ? `Anomaly detected, score ${fmt(score, 2)}` : 'Back to OK';
    cam.lastAnnounce = now;
    cam.lastVerdict = bad;
  }
}

function drawOverlay() {
  const ctx = el.overlay.getContext('2d');
  ctx.clearRect(0, 0, el.overlay.width, el.overlay.height);
  const r = cam.last;
  if (r) {
    paintMap(cam.mapCanvas, r.map, r.mapWidth, r.mapHeight, r.mapLow, r.mapHigh, cam.mapScratch);
    const sx = el.overlay.width / r.width, sy = el.overlay.height / r.height;
    drawMapOver(ctx, cam.mapCanvas, r.mapRect, sx, sy, Number(el.liveOpacity.value));
  }
  const roi = cam.drag ? cam.drag.rect : cam.roi;
  if (roi) {
    ctx.save();
    const lw = Math.max(1.5, el.overlay.width / 320);
    ctx.lineWidth = lw;
    ctx.setLineDash([lw * 4, lw * 3]);
    ctx.strokeStyle = '#ffffff';
    ctx.shadowColor = 'rgba(0,0,0,0.8)';
    ctx.shadowBlur = 3;
    ctx.strokeRect(roi.x, roi.y, roi.w, roi.h);
    ctx.restore();
  }
}

el.liveOpacity.addEventListener('input', drawOverlay);

let themeCache = null;
function themeColors() {
  if (!themeCache) {
    const styles = getComputedStyle(document.documentElement);
    themeCache = { bad: styles.getPropertyValue('--bad').trim() || '#b3261e',
                   accent: styles.getPropertyValue('--accent').trim() || '#2b6cb0' };
  }
  return themeCache;
}

function drawSparkline() {
  const c = el.sparkline;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(50, Math.round(c.clientWidth * dpr)), h = Math.max(20, Math.round(c.clientHeight * dpr));
  if (c.width !== w) c.width = w;
  if (c.height !== h) c.height = h;
  const ctx = c.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  const s = cam.scores;
  if (!s.length) return;
  const thr = state.threshold;
  // Range: threshold and the 95th percentile (rare huge spikes are clipped at
  // the top so normal frame-to-frame variation stays readable).
  const sorted = [...s].sort((a, b) => a - b);
  let lo = Math.min(thr, sorted[0]), hi = Math.max(thr, sorted[Math.floor(0.95 * (sorted.length - 1))]);
  const pad = (hi - lo) * 0.15 || 1;
  lo -= pad; hi += pad;
  const y = (v) => Math.max(1, Math.min(h - 1, h - ((v - lo) / (hi - lo)) * h));
  const x = (i) => (i / (kSparkPoints - 1)) * w;
  const colors = themeColors();
  ctx.strokeStyle = colors.bad;
  ctx.setLineDash([4 * dpr, 4 * dpr]);
  ctx.lineWidth = dpr;
  ctx.beginPath();
  ctx.moveTo(0, y(thr));
  ctx.lineTo(w, y(thr));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = colors.accent;
  ctx.lineWidth = 1.5 * dpr;
  ctx.beginPath();
  const off = kSparkPoints - s.length;
  s.forEach((v, i) => (i ? ctx.lineTo(x(i + off), y(v)) : ctx.moveTo(x(i + off), y(v))));
  ctx.stroke();
  const last = s[s.length - 1];
  ctx.fillStyle = last >= thr ? colors.bad : colors.accent;
  ctx.beginPath();
  ctx.arc(x(kSparkPoints - 1), y(last), 3 * dpr, 0, Math.PI * 2);
  ctx.fill();
}

function clearCameraHistory() {
  cam.scores = [];
  cam.resultTimes = [];
  cam.latencies = [];
  cam.last = null;
  el.liveScore.textContent = '—';
  el.liveVerdict.dataset.verdict = 'none';
  el.liveVerdict.textContent = 'No frame';
  drawSparkline();
  if (cam.running) drawOverlay();
}

// ROI: drag on the picture (pointer events: mouse, pen and touch).
function overlayPoint(e) {
  const rect = el.overlay.getBoundingClientRect();
  const x = ((e.clientX - rect.left) / rect.width) * el.overlay.width;
  const y = ((e.clientY - rect.top) / rect.height) * el.overlay.height;
  return { x: Math.max(0, Math.min(el.overlay.width, x)), y: Math.max(0, Math.min(el.overlay.height, y)) };
}

el.overlay.addEventListener('pointerdown', (e) => {
  if (!cam.running) return;
  e.preventDefault();
  el.overlay.setPointerCapture(e.pointerId);
  const p = overlayPoint(e);
  cam.drag = { start: p, rect: { x: p.x, y: p.y, w: 0, h: 0 } };
});
el.overlay.addEventListener('pointermove', (e) => {
  if (!cam.drag) return;
  const p = overlayPoint(e), s = cam.drag.start;
  cam.drag.rect = { x: Math.min(s.x, p.x), y: Math.min(s.y, p.y), w: Math.abs(p.x - s.x), h: Math.abs(p.y - s.y) };
  drawOverlay();
});
const endDrag = () => {
  if (!cam.drag) return;
  const r = cam.drag.rect;
  cam.drag = null;
  if (r.w >= 12 && r.h >= 12) setRoi({ x: Math.round(r.x), y: Math.round(r.y), w: Math.round(r.w), h: Math.round(r.h) });
  else drawOverlay();
};
el.overlay.addEventListener('pointerup', endDrag);
el.overlay.addEventListener('pointercancel', endDrag);

function setRoi(roi) {
  cam.roi = roi;
  cam.roiGen += 1;
  clearCameraHistory();
  updateControls();
  drawOverlay();
  setStatus(roi ? `Region of interest: ${roi.w}×${roi.h} px at (${roi.x}, ${roi.y}).` : 'Region of interest cleared: whole picture.');
}

el.roiCenterBtn.addEventListener('click', () => {
  const w = Math.round(cam.captureW / 2), h = Math.round(cam.captureH / 2);
  setRoi({ x: Math.round((cam.captureW - w) / 2), y: Math.round((cam.captureH - h) / 2), w, h });
});
el.roiClearBtn.addEventListener('click', () => setRoi(null));

el.freezeBtn.addEventListener('click', () => {
  if (!cam.running) return;
  cam.frozen = !cam.frozen;
  if (cam.frozen) el.video.pause();
  else el.video.play().catch(() => {});
  // Frozen before any result (e.g. just after the region changed): score the
  // frozen picture once, after any detection still running has finished.
  if (cam.frozen && !cam.last) {
    const scoreFrozen = () => {
      if (!cam.frozen || cam.last) return;
      if (cam.inFlight) { setTimeout(scoreFrozen, 20); return; }
      detectFrame(true);
    };
    scoreFrozen();
  }
  el.stage.dataset.frozen = String(cam.frozen);
  el.freezeBtn.setAttribute('aria-pressed', String(cam.frozen));
  el.freezeBtn.textContent = cam.frozen ? 'Unfreeze' : 'Freeze';
  setStatus(cam.frozen ? 'Frozen: the last result stays on screen.' : 'Live again.');
});

el.snapshotBtn.addEventListener('click', async () => {
  if (!cam.running) return;
  const c = document.createElement('canvas');
  c.width = el.video.videoWidth;
  c.height = el.video.videoHeight;
  c.getContext('2d').drawImage(el.video, 0, 0);
  const blob = await new Promise((res) => c.toBlob(res, 'image/png'));
  if (!blob) { showError('Could not take a snapshot.'); return; }
  const stamp = new Date().toISOString().slice(11, 19).replace(/:/g, '-');
  await addFiles([new File([blob], `snapshot-${stamp}.png`, { type: 'image/png' })], 'snapshot');
});

// ---------------------------------------------------------------- calibration
el.calibBtn.addEventListener('click', () => {
  if (cam.calib) { finishCalibration(true); return; }
  if (!cam.running) { showError('Start the camera first: calibration records live frames.'); return; }
  if (cam.frozen) { showError('Unfreeze the camera first: calibration needs live frames.'); return; }
  const seconds = Number(el.calibSeconds.value) || 5;
  cam.calib = { start: performance.now(), durationMs: seconds * 1000, scores: [] };
  el.calibProgress.hidden = false;
  el.calibProgress.value = 0;
  el.calibBtn.textContent = 'Stop recording';
  setStatus(`Recording good frames for ${seconds} s… keep only good parts in view.`, { sticky: true });
});

async function finishCalibration(cancelled) {
  const c = cam.calib;
  cam.calib = null;
  el.calibProgress.hidden = true;
  el.calibBtn.textContent = 'Record good frames';
  if (cancelled || !c) { setStatus('Calibration cancelled; threshold unchanged.'); return; }
  const r = thresholdFromGoodScores(c.scores, state.model.info.threshold);
  if (!r.ok) { showError(`Calibration failed: ${r.message}`); return; }
  state.calibration = { threshold: r.threshold, calibratedAt: new Date().toISOString(), frames: r.frames,
                        q99: r.q99, median: r.median, margin: r.margin };
  if (!saveThreshold(state.model.key, state.calibration)) {
    showError('The calibrated threshold is in use but could not be saved in this browser (storage unavailable).');
  }
  await applyThreshold(r.threshold, 'calibrated');
  setStatus(`Calibrated on ${r.frames} good frames: median ${fmt(r.median, 3)}, 99th percentile ${fmt(r.q99, 3)} ` +
            `+ margin ${fmt(r.margin, 3)} → threshold ${fmt(r.threshold, 3)}.`);
}

// ---------------------------------------------------------------- controls
function updateControls() {
  const live = cam.running;
  el.freezeBtn.disabled = !live;
  el.snapshotBtn.disabled = !live || !state.model;
  el.roiCenterBtn.disabled = !live;
  el.roiClearBtn.disabled = !live || !cam.roi;
  el.calibBtn.disabled = !live || !state.model;
}

window.addEventListener('resize', () => drawSparkline());
window.matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', () => { themeCache = null; drawSparkline(); });

// ---------------------------------------------------------------- start
async function main() {
  updateControls();
  refreshCameraList();
  if (!globalThis.Worker || !globalThis.WebAssembly) {
    setBadge(el.engineBadge, 'error', 'Engine: unavailable');
    showError('This browser has no WebAssembly or Web Workers; flawlens cannot run here.');
    setBadge(el.modelBadge, 'error', 'Model: none');
    return;
  }
  if (!(await startEngine())) {
    setBadge(el.modelBadge, 'error', 'Model: none');
    el.modelCard.replaceChildren(textEl('p', 'No model: the detection engine is not available.', 'hint'));
    return;
  }
  await loadDefaultModel();
  setStatus(state.model ? `Ready. Model “${state.model.name}”. Add images or start the camera.` : '');
}

main();
