// Model loading (default model, "Open model…", dropped files, or bytes from
// code) and the model card. The worker keeps its previous detector when a
// load fails, so a bad file never leaves the page without a model.

import { hashBytesAsync, modelKey } from '../storage.mjs';
import { setBadge, textEl, errText, fmt, fmtCount } from './dom.mjs';

// What the model's own threshold means, in words (the C++ wording, from
// info.falseAlarmWords), and what it rests on.
function thresholdText(info) {
  const t = fmt(info.threshold, 4);
  if (!info.falseAlarmWords) return t;
  const from = info.goodImages > 0
    ? `, estimated from ${info.goodImages} good images${info.goodGroups > 0 ? ` of ${info.goodGroups} parts or sessions` : ''} scored by models that did not see them`
    : '';
  return `${t}: ${info.falseAlarmWords} are flagged${from}`;
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

// A taught model's card: {"taught": {where, source, frames, created}}.
function taughtText(t) {
  if (!t || typeof t !== 'object') return null;
  const where = t.where === 'browser' ? 'in the browser' : scalarText(t.where) ? `with ${scalarText(t.where)}` : '';
  const frames = scalarText(t.frames);
  const source = { camera: 'camera frames', photos: 'photos', both: 'camera frames and photos' }[t.source] || 'images';
  return [where, frames !== null ? `from ${frames} ${source}` : null, scalarText(t.created)].filter(Boolean).join(', ');
}

// card.roi: {x, y, w, h} as fractions of the picture.
function roiText(r) {
  if (!r || typeof r !== 'object' || ![r.x, r.y, r.w, r.h].every((v) => typeof v === 'number')) return null;
  const pc = (v) => `${Math.round(v * 1000) / 10} %`;
  return `${pc(r.w)} × ${pc(r.h)} of the picture at (${pc(r.x)}, ${pc(r.y)}); set on the camera when it runs`;
}

function renderCard(model) {
  const { info, name, hash, fileName } = model;
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
  addRow(dl, 'Threshold', thresholdText(info));
  addRow(dl, 'Recalibrated', recalibrationText(card.recalibrations));
  addRow(dl, 'Taught', taughtText(card.taught));
  addRow(dl, 'Region', roiText(card.roi));
  addRow(dl, 'Parameters', fmtCount(info.parameters));
  addRow(dl, 'Compute', info.macs ? `${fmtCount(info.macs)} MACs / frame` : null);
  addRow(dl, 'Backend', info.backend);
  const skip = new Set(['name', 'metrics', 'training', 'taught', 'roi']);
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
  return root;
}

// Downloads and fingerprints the site's default model: {buffer, hash} or
// {error}. js/boot.mjs starts it before the rest of the page has loaded.
export async function fetchDefaultModel() {
  const url = new URL('../../model/default.safetensors', import.meta.url);
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const buffer = await res.arrayBuffer();
    return { buffer, hash: await hashBytesAsync(new Uint8Array(buffer)) };
  } catch (e) {
    return { error: e };
  }
}

export class ModelPanel {
  // els: {badge, card, input}. `onLoaded(model, previous)` is awaited after
  // every successful load; `debug.modelLoadedAt` is set for the test hook.
  constructor({ els, session, messages, debug, onLoaded }) {
    this.els = els;
    this.session = session;
    this.messages = messages;
    this.debug = debug;
    this.onLoaded = onLoaded;
    this.model = null;  // {info, name, hash, key, fileName, isDefault, generation}
    this.generation = 0;
    els.input.addEventListener('change', () => {
      const file = els.input.files[0];
      els.input.value = '';
      this.openFile(file);
    });
  }

  // bytes: an ArrayBuffer (transferred to the worker, so detached afterwards)
  // or a typed array (copied first, so the caller keeps it). `name` replaces
  // the card's name on the page (a taught model renamed in this browser).
  // `hash`: the bytes' fingerprint when the caller has it already.
  async loadBytes(bytes, fileName, { isDefault = false, name: nameOverride = '', hash: knownHash = null } = {}) {
    const { messages, els } = this;
    if (!this.session.ready) {
      messages.showError(`Cannot load "${fileName}": the engine is not available.`);
      return false;
    }
    const buffer = bytes instanceof ArrayBuffer ? bytes
      : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength).slice().buffer;
    const previous = this.model;
    messages.setStatus(`Loading model “${fileName}”…`, { sticky: true });
    // Before the buffer is transferred; in slices, so a big model does not block the page.
    const hash = knownHash || await hashBytesAsync(new Uint8Array(buffer));
    let info;
    try {
      info = await this.session.call('loadModel', { bytes: buffer, backend: 'auto' }, [buffer]);
    } catch (e) {
      const keep = previous ? ` Still using “${previous.name}”.` : '';
      messages.showError(`Could not load model “${fileName}”: ${errText(e)}.${keep}`.replace('..', '.'));
      messages.setStatus('');
      if (!previous) this.markNone();
      return false;
    }
    const name = nameOverride || info.name || fileName;
    this.generation += 1;
    // The stored threshold follows the file, not a name given on this page.
    this.model = { info, name, hash, key: modelKey(info.name || fileName, hash), fileName, isDefault,
                   generation: this.generation };
    this.debug.modelLoadedAt = performance.now();
    performance.mark('flawlens:model-ready');
    setBadge(els.badge, 'ok', `Model: ${name}`);
    els.card.replaceChildren(renderCard(this.model));
    if (this.onLoaded) await this.onLoaded(this.model, previous);
    return true;
  }

  // Starts downloading and fingerprinting the default model (while the
  // engine starts), or takes over a download started already (`started`: a
  // fetchDefaultModel() promise); loadDefault() takes the result.
  prefetchDefault(started = null) {
    if (!this.prefetched) this.prefetched = started || fetchDefaultModel();
    return this.prefetched;
  }

  async loadDefault() {
    const fetched = await (this.prefetched || fetchDefaultModel());
    this.prefetched = null;
    if (fetched.error) {
      this.markNone();
      this.messages.showError(`The default model (model/default.safetensors) could not be downloaded: ${errText(fetched.error)}. ` +
                              'Open a model file with “Open model…”.');
      this.showCardHint('No model loaded.');
      return false;
    }
    return this.loadBytes(fetched.buffer, 'default.safetensors', { isDefault: true, hash: fetched.hash });
  }

  async openFile(file) {
    if (!file) return;
    if (file.size === 0) {
      this.messages.showError(`“${file.name}” is empty; it is not a model file.${this.model ? ` Still using “${this.model.name}”.` : ''}`);
      return;
    }
    let buffer;
    try {
      buffer = await file.arrayBuffer();
    } catch (e) {
      this.messages.showError(`Could not read “${file.name}”: ${errText(e)}`);
      return;
    }
    await this.loadBytes(buffer, file.name);
  }

  markNone() {
    setBadge(this.els.badge, 'error', 'Model: none');
  }

  showCardHint(text) {
    this.els.card.replaceChildren(textEl('p', text, 'hint'));
  }
}
