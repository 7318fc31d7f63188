// The "Teach" panel: collect good frames from the camera (inside the region
// of interest, if one is set) and/or good photos, let the worker fit a
// detector on the loaded model's pretrained backbone, load the taught model
// (the live view, gallery and detail view then use it like any model), keep
// it in this browser, and download it and the photos.
//
// Worker protocol (see ../worker.mjs): teachBegin {} -> {mapWidth, mapHeight,
// backbone}; teachAdd {bitmap, group} -> {images}; teachFit {name, roi,
// source, frames, created} -> {bytes, info, ...} with progress messages;
// teachCancel {}. Frames go to the worker as they are captured, at most
// kMaxInFlight at a time, so the page never queues work behind itself.
//
// Nothing is lost on failure: the collected frames stay (teach again, add
// more, or download them), the loaded model stays until a fit succeeded, and
// a taught model that cannot be stored stays in use and downloadable.

import { saveStartModel, loadStartModel as storedStartModel } from '../storage.mjs';
import { listTaught, saveTaught, loadTaughtBytes, getTaught, renameTaught, deleteTaught } from '../taught-models.mjs';
import { textEl, errText } from './dom.mjs';

const kMaxInFlight = 2;      // frames captured or in the worker at once
const kMinGapMs = 25;        // at most 40 frames a second
const kMaxFrames = 600;      // kept bitmaps: 640x480 RGBA is 1.2 MB each
const kThumbs = 24;          // thumbnails shown in the strip (the newest)
const kThumbHeight = 48;
const kRejectStop = 20;      // consecutive rejected camera frames that stop a recording
// The engine needs 6 frames (fit::kMinFitImages) to fit and to check its
// threshold on frames each fold did not see; fewer than about 20 give a
// threshold it warns about.
const kMinFit = 6;
const kImageExt = /\.(png|jpe?g|bmp|webp)$/i;

// The group of a photo: its name without extension and a leading
// "<letters><digits>_" tag (exp3_, cam1-), the rule of `flawlens train`
// (tools/cli/dataset.cc GroupKey).
export function photoGroup(name) {
  const stem = String(name).replace(/^.*\//, '').replace(/\.[^.]*$/, '');
  const m = /^[A-Za-z]+\d+[_-](.+)$/.exec(stem);
  return `photo:${m ? m[1] : stem}`;
}

// "about 1 in 50 good parts" (fit::DescribeRate's wording).
function rateWords(rate) {
  if (!(rate > 0)) return 'no good parts';
  if (rate < 1e-4) return 'fewer than 1 in 10000 good parts';
  if (rate >= 0.095) return `about ${Math.max(1, Math.round(rate * 10))} in 10 good parts`;
  let inv = 1 / rate;
  const mag = 10 ** (Math.floor(Math.log10(inv)) - 1);
  inv = Math.round(inv / mag) * mag;
  return `about 1 in ${inv.toFixed(0)} good parts`;
}
// Worker error codes that reject one image, not the whole collection.
const kImageErrors = new Set(['black_frame', 'frozen_frame', 'bad_image', 'invalid_argument', 'non_finite']);

function stamp(d = new Date()) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

function fileSafe(name) {
  return String(name).replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'model';
}

export function saveBlob(blob, fileName) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// "The 12 good frames so far are kept." (nothing to keep: says so).
function keptText(n) {
  if (n === 0) return 'No good frame was added yet.';
  return n === 1 ? 'The 1 good frame so far is kept.' : `The ${n} good frames so far are kept.`;
}

function sizeText(bytes) {
  if (!(bytes > 0)) return '';
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

// Progress from the worker: a number in [0, 1] or {fraction|done/total, stage}.
function progressFraction(p) {
  if (typeof p === 'number') return p;
  if (p && typeof p === 'object') {
    if (typeof p.fraction === 'number') return p.fraction;
    if (typeof p.done === 'number' && p.total > 0) return p.done / p.total;
  }
  return null;
}

export class TeachPanel {
  // els: {seconds, recordBtn, photosInput, folderInput, progress, count, strip,
  //       name, teachBtn, clearBtn, downloadModelBtn, downloadPhotosBtn, note,
  //       list, startDefault}
  // models: ModelPanel (loadBytes/loadDefault). getModel(): the loaded model.
  constructor({ els, camera, session, models, messages, getModel }) {
    Object.assign(this, { els, camera, session, models, messages, getModel });
    this.frames = [];          // {bitmap|file, source, name}: what "Download photos" writes
    this.images = 0;           // accepted by the engine
    this.rejected = { black: 0, frozen: 0, other: 0 };
    this.begun = null;         // teachBegin's answer for this collection
    this.collection = 0;       // bumped when the collection is cleared
    this.recording = null;     // {start, durationMs, timer, consecutive, lastCode}
    this.inFlight = 0;
    this.lastCapture = 0;
    this.busy = false;         // adding photos or fitting
    this.fitting = false;
    this.taught = null;        // {name, bytes, record, storedId}
    this.stored = [];
    this.lastNote = '';

    els.recordBtn.addEventListener('click', () => (this.recording ? this.stopRecording('stopped') : this.startRecording()));
    for (const input of [els.photosInput, els.folderInput]) {
      input.addEventListener('change', () => {
        const files = [...input.files];
        input.value = '';
        this.addPhotos(files);
      });
    }
    els.teachBtn.addEventListener('click', () => this.fit());
    els.clearBtn.addEventListener('click', () => this.clear());
    els.downloadModelBtn.addEventListener('click', () => this.downloadModel());
    els.downloadPhotosBtn.addEventListener('click', () => this.downloadPhotos());
    els.startDefault.addEventListener('change', () => {
      if (els.startDefault.checked) this.setStartModel(null);
    });
    els.name.value = `parts-${stamp()}`;
    this.updateControls();
  }

  // ---- state shown to the test hook
  get state() {
    return {
      frames: this.frames.length, images: this.images, rejected: { ...this.rejected },
      recording: Boolean(this.recording), fitting: this.fitting, busy: this.busy, inFlight: this.inFlight,
      taught: this.taught ? { name: this.taught.name, size: this.taught.bytes.byteLength, storedId: this.taught.storedId } : null,
      stored: this.stored.map((r) => ({ id: r.id, name: r.name, frames: r.frames })),
      startModel: storedStartModel(),
      note: this.lastNote,
    };
  }

  // ---- messages: the page's alert for errors, the panel's own line for progress
  note(text, kind = 'info') {
    this.lastNote = text;
    this.els.note.textContent = text;
    this.els.note.dataset.kind = kind;
  }

  fail(text) {
    this.note(text, 'error');
    this.messages.showError(text);
  }

  modelName() {
    const m = this.getModel();
    return m ? `“${m.name}”` : 'no model';
  }

  // ---- the collection
  async ensureBegun() {
    if (this.begun) return true;
    if (!this.session.requireReady()) return false;
    const model = this.getModel();
    if (!model) {
      this.fail('No model is loaded: teaching needs a model with a pretrained backbone (the page\'s default model).');
      return false;
    }
    const collection = this.collection;
    try {
      const r = await this.session.call('teachBegin', {});
      if (collection !== this.collection) return false;
      this.begun = r || {};
      return true;
    } catch (e) {
      if (e.code === 'no_backbone') {
        this.fail(`The loaded model ${this.modelName()} has no pretrained backbone, so it cannot be taught. ` +
                  'Load a model with one first: the page\'s default model (choose “Start with the default model” and reload), ' +
                  'a model taught here (“Use”), or a file made with “flawlens train --backbone centernet” (“Open model…”).');
      } else {
        this.fail(`Teaching could not start: ${errText(e)}`);
      }
      return false;
    }
  }

  // A frame or photo the engine took.
  accept(item, r) {
    if (this.frames.length < kMaxFrames) this.frames.push(item);
    else item.bitmap?.close();
    if (r && typeof r.images === 'number') {
      this.images = r.images;
    } else {
      this.images += 1;
    }
    this.addThumb(item);
    this.updateCount();
  }

  addThumb(item) {
    const src = item.thumbSource;
    if (!src) return;
    const c = document.createElement('canvas');
    const h = kThumbHeight, w = Math.max(8, Math.round((src.width / src.height) * h));
    c.width = w;
    c.height = h;
    c.getContext('2d').drawImage(src, 0, 0, w, h);
    c.setAttribute('role', 'img');
    c.setAttribute('aria-label', `${item.source === 'camera' ? 'Frame' : 'Photo'} ${this.images}`);
    c.className = 'teach-thumb';
    const strip = this.els.strip;
    strip.prepend(c);
    while (strip.children.length > kThumbs) strip.lastElementChild.remove();
    delete item.thumbSource;
  }

  updateCount() {
    const { images } = this;
    let text = images === 0 ? 'No good frames yet.' : `${images} good ${images === 1 ? 'frame' : 'frames'}`;
    const skipped = this.rejected.black + this.rejected.frozen + this.rejected.other;
    if (skipped) text += `, ${skipped} skipped`;
    if (images > 0 && images < kMinFit) text += ' — about 20 are needed';
    this.els.count.textContent = text;
    this.updateControls();
  }

  sourceKind() {
    const cam = this.frames.some((f) => f.source === 'camera');
    const pho = this.frames.some((f) => f.source === 'photos');
    return cam && pho ? 'both' : pho ? 'photos' : 'camera';
  }

  async clear() {
    if (this.recording) this.stopRecording('cleared');
    this.collection += 1;
    for (const f of this.frames) f.bitmap?.close();
    this.frames = [];
    this.images = 0;
    this.rejected = { black: 0, frozen: 0, other: 0 };
    this.els.strip.replaceChildren();
    const wasBegun = this.begun;
    this.begun = null;
    this.note('Frames cleared.');
    this.updateCount();
    if (wasBegun && this.session.ready) {
      try { await this.session.call('teachCancel', {}); } catch { /* nothing to cancel */ }
    }
  }

  // ---- recording from the camera
  async startRecording() {
    const { camera, els } = this;
    if (this.busy) return;
    if (!camera.running) { this.fail('Start the camera first: teaching records good frames from it (or add good photos).'); return; }
    if (camera.frozen) { this.fail('Unfreeze the camera first: teaching needs live frames.'); return; }
    if (!(await this.ensureBegun())) return;
    if (!camera.running) return;
    const seconds = Number(els.seconds.value) || 10;
    this.recording = { start: performance.now(), durationMs: seconds * 1000, consecutive: 0, lastCode: '', added: 0,
                       timer: setInterval(() => this.tick(), 100) };
    els.progress.hidden = false;
    els.progress.value = 0;
    els.recordBtn.textContent = 'Stop recording';
    els.recordBtn.setAttribute('aria-pressed', 'true');
    this.note(`Recording good frames for ${seconds} s${camera.roi ? ' inside the region of interest' : ''}… show good parts only, ` +
              'moving them a little.');
    this.messages.clearError();
    this.updateControls();
  }

  tick() {
    const rec = this.recording;
    if (!rec) return;
    const frac = Math.min(1, (performance.now() - rec.start) / rec.durationMs);
    this.els.progress.value = frac;
    if (frac >= 1) this.stopRecording('done');
  }

  // The camera's frame consumer.
  onFrame() {
    const rec = this.recording;
    if (!rec || this.inFlight >= kMaxInFlight || this.camera.frozen || !this.camera.frameReady) return;
    const now = performance.now();
    if (now - this.lastCapture < kMinGapMs) return;
    this.lastCapture = now;
    this.addCameraFrame(rec);
  }

  async addCameraFrame(rec) {
    const collection = this.collection;
    this.inFlight += 1;
    let bitmap = null, keep = null;
    try {
      bitmap = await this.camera.captureRegion();
      // The worker gets `bitmap` (transferred); `keep` is what the thumbnail
      // and "Download photos" use: the same pixels.
      keep = await createImageBitmap(bitmap);
      const r = await this.session.call('teachAdd', { bitmap }, [bitmap]);
      bitmap = null;
      if (collection !== this.collection) return;
      rec.consecutive = 0;
      rec.added += 1;
      this.accept({ bitmap: keep, thumbSource: keep, source: 'camera' }, r);
      keep = null;
    } catch (e) {
      if (collection !== this.collection) return;
      this.onRejected(rec, e);
    } finally {
      bitmap?.close?.();
      keep?.close?.();
      this.inFlight -= 1;
    }
  }

  onRejected(rec, e) {
    const code = e && e.code;
    if (code === 'black_frame') this.rejected.black += 1;
    else if (code === 'frozen_frame') this.rejected.frozen += 1;
    else this.rejected.other += 1;
    this.updateCount();
    if (code !== 'black_frame' && code !== 'frozen_frame') {
      // Not a property of the frame: the engine cannot take frames now.
      if (this.recording === rec) this.stopRecording('error');
      this.fail(`Recording stopped: a frame could not be added: ${errText(e)}. ${keptText(this.images)}`);
      return;
    }
    rec.consecutive += 1;
    rec.lastCode = code;
    if (rec.consecutive >= kRejectStop && this.recording === rec) {
      this.stopRecording('rejected');
      const why = code === 'black_frame'
        ? 'The camera picture is blank (black or one flat colour: lens covered, lights off, or a camera that sends no picture)'
        : 'The camera picture does not change at all (a frozen camera, or a still image instead of video)';
      this.fail(`${why}: ${rec.consecutive} frames in a row were not usable, so recording stopped. ` +
                keptText(this.images));
    }
  }

  stopRecording(why) {
    const rec = this.recording;
    if (!rec) return;
    clearInterval(rec.timer);
    this.recording = null;
    const { els } = this;
    els.progress.hidden = true;
    els.recordBtn.textContent = 'Record good parts';
    els.recordBtn.setAttribute('aria-pressed', 'false');
    this.updateControls();
    if (why === 'done' || why === 'stopped') {
      // Frames still in the worker land in the count when they come back.
      const wait = () => {
        if (this.inFlight > 0) { setTimeout(wait, 30); return; }
        this.note(`Recorded ${rec.added} good frames (${this.images} in all). ` +
                  (this.enoughFrames() ? 'Press “Teach” to fit the model.' : this.tooFewText()));
        this.updateControls();
      };
      wait();
    }
  }

  // The camera stopped (hook of the camera module).
  onCameraStop(reason) {
    if (!this.recording) return;
    this.stopRecording('camera');
    const text = reason === 'ended'
      ? `The camera stopped while recording (unplugged, or taken by another app). ${keptText(this.images)} ` +
        'Reconnect it and record more, or teach with what you have.'
      : `Recording stopped with the camera. ${keptText(this.images)}`;
    if (reason === 'ended') this.fail(text);
    else this.note(text);
  }

  // ---- photos
  async addPhotos(files) {
    const images = files.filter((f) => kImageExt.test(f.name) || /^image\//.test(f.type));
    if (files.length && !images.length) { this.fail('None of the chosen files is a PNG, JPEG, BMP or WebP image.'); return; }
    if (!images.length || this.busy) return;
    if (this.recording) this.stopRecording('stopped');
    if (!(await this.ensureBegun())) return;
    const collection = this.collection;
    this.busy = true;
    this.updateControls();
    const { els } = this;
    els.progress.hidden = false;
    const bad = [];
    let added = 0;
    try {
      for (let i = 0; i < images.length; ++i) {
        if (collection !== this.collection) return;
        const file = images[i];
        els.progress.value = i / images.length;
        this.note(`Adding good photos: ${i + 1} of ${images.length}…`);
        let bitmap = null, thumb = null;
        try {
          try {
            // Decoded like a gallery upload (../worker.mjs): no colour conversion.
            bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none',
                                                      imageOrientation: 'from-image' });
            thumb = await createImageBitmap(bitmap, { resizeHeight: kThumbHeight, resizeQuality: 'low' });
          } catch (e) {
            bad.push(`${file.name} (the browser cannot decode it)`);
            this.rejected.other += 1;
            continue;
          }
          let r;
          try {
            // The photos of one part share a group: a file name without its
            // extension and lighting/camera tag (as `flawlens train` groups).
            r = await this.session.call('teachAdd', { bitmap, group: photoGroup(file.name) }, [bitmap]);
          } catch (e) {
            // A property of this image: skip it. Anything else stops adding.
            if (!kImageErrors.has(e && e.code)) throw e;
            bad.push(`${file.name} (${errText(e)})`);
            if (e.code === 'black_frame') this.rejected.black += 1;
            else if (e.code === 'frozen_frame') this.rejected.frozen += 1;
            else this.rejected.other += 1;
            continue;
          }
          bitmap = null;
          if (collection !== this.collection) return;
          this.accept({ file, thumbSource: thumb, source: 'photos', name: file.webkitRelativePath || file.name }, r);
          added += 1;
        } finally {
          bitmap?.close?.();
          thumb?.close?.();
        }
      }
    } catch (e) {
      this.fail(`Adding photos stopped: ${errText(e)}. ${keptText(this.images)}`);
      return;
    } finally {
      this.busy = false;
      els.progress.hidden = true;
      this.updateCount();
    }
    const tail = this.enoughFrames() ? 'Press “Teach” to fit the model.' : this.tooFewText();
    if (bad.length) {
      this.fail(`Added ${added} of ${images.length} photos; not used: ${bad.slice(0, 5).join(', ')}` +
                `${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}. ${tail}`);
    } else {
      this.note(`Added ${added} good photos (${this.images} in all). ${tail}`);
    }
  }

  // ---- fitting
  enoughFrames() {
    return this.images >= kMinFit;
  }

  tooFewText() {
    return `Too few good frames to teach: ${this.images}; at least ${kMinFit} are needed, from different moments or ` +
           'parts — record for a few more seconds (about 20 frames).';
  }

  async fit() {
    const { els } = this;
    if (this.busy || this.recording) return;
    if (!this.session.requireReady()) return;
    if (!this.enoughFrames()) {
      this.fail(`${this.tooFewText()} Still using ${this.modelName()}.`);
      return;
    }
    const name = els.name.value.trim() || `parts-${stamp()}`;
    const roi = this.sourceKind() === 'photos' ? null : this.camera.roiFraction;
    const created = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const previous = this.getModel();
    this.busy = true;
    this.fitting = true;
    els.progress.hidden = false;
    els.progress.value = 0;
    this.note(`Teaching “${name}” on ${this.images} good frames…`);
    els.teachBtn.textContent = 'Teaching…';
    this.updateControls();
    let r;
    try {
      r = await this.session.client.call('teachFit', {
        name, roi, source: this.sourceKind(), frames: this.images, created,
      }, [], {
        onProgress: (p) => {
          const f = progressFraction(p);
          if (f !== null && Number.isFinite(f)) els.progress.value = Math.max(0, Math.min(1, f));
        },
      });
    } catch (e) {
      this.busy = false;
      this.fitting = false;
      els.teachBtn.textContent = 'Teach';
      els.progress.hidden = true;
      this.updateControls();
      this.fail(this.fitErrorText(e, previous));
      return;
    }
    const bytes = new Uint8Array(r.bytes);
    this.taught = { name, bytes, storedId: null,
                    record: { name, created, frames: this.images, source: this.sourceKind(), roi,
                              backbone: this.begun?.backbone?.name || null } };
    els.progress.value = 1;
    // loadBytes copies a typed array: `bytes` stays ours for download and storage.
    const loaded = await this.models.loadBytes(bytes, `${fileSafe(name)}.safetensors`, { name });
    this.busy = false;
    this.fitting = false;
    els.teachBtn.textContent = 'Teach';
    els.progress.hidden = true;
    this.updateControls();
    if (!loaded) {
      this.note(`“${name}” was taught but could not be loaded; “Download model” still saves it.`, 'error');
      return;
    }
    const c = r.calibration || {};
    const meaning = Number.isFinite(c.falseAlarmRate)
      ? ` Threshold ${c.threshold.toFixed(2)}: ${rateWords(c.falseAlarmRate)} are flagged, estimated from ${c.goodImages} ` +
        `frames scored by models that did not see them (${r.groups} parts or time blocks).`
      : '';
    const warnings = Array.isArray(r.warnings) && r.warnings.length ? ` Note: ${r.warnings.join('; ')}.` : '';
    this.note(`Taught “${name}” on ${this.images} good frames; it is in use now.${meaning}${warnings}`,
              warnings ? 'error' : undefined);
    await this.store();
  }

  fitErrorText(e, previous) {
    const keep = previous ? ` Still using “${previous.name}”; the ${this.images} frames are kept.` : '';
    const code = e && e.code;
    if (code === 'degenerate') {
      return 'The good frames are all the same (a frozen camera, or one still picture?): there is no variation to learn from. ' +
             `Record the parts moving a little, or different good parts, and teach again.${keep}`;
    }
    if (code === 'no_backbone') {
      return `The loaded model ${this.modelName()} has no pretrained backbone, so it cannot be taught. Load the page's default ` +
             `model or a model taught here first.${keep}`;
    }
    if (code === 'too_few' || /too few/i.test(errText(e))) return `${this.tooFewText()}${keep}`;
    if (code === 'cancelled') return `Teaching was cancelled.${keep}`;
    return `Teaching failed: ${errText(e)}.${keep}`.replace('..', '.');
  }

  // ---- storage (IndexedDB)
  async store() {
    const t = this.taught;
    if (!t) return;
    try {
      const row = await saveTaught(t.record, t.bytes);
      t.storedId = row.id;
      const m = this.getModel();
      if (m && m.name === t.name && !m.storedId) m.storedId = row.id;
      this.note(`${this.lastNote} Saved in this browser.`);
    } catch (e) {
      const why = e.code === 'quota'
        ? 'the browser\'s storage for this page is full'
        : errText(e);
      this.fail(`“${t.name}” could not be saved in this browser (${why}). It is loaded and in use; use “Download model” to ` +
                'keep it, or delete older taught models to make room.');
    }
    await this.refreshList();
  }

  async refreshList() {
    try {
      this.stored = await listTaught();
    } catch (e) {
      this.stored = [];
      this.els.list.replaceChildren(textEl('li', `Taught models cannot be kept in this browser: ${errText(e)}.`, 'hint'));
      return;
    }
    this.renderList();
  }

  renderList() {
    const { els } = this;
    const start = storedStartModel();
    els.startDefault.checked = !start || !this.stored.some((r) => r.id === start);
    if (!this.stored.length) {
      els.list.replaceChildren(textEl('li', 'No taught models in this browser yet.', 'hint'));
      return;
    }
    els.list.replaceChildren(...this.stored.map((row) => this.renderRow(row, start)));
  }

  renderRow(row, start) {
    const li = document.createElement('li');
    li.className = 'taught-row';
    li.dataset.id = row.id;
    const head = document.createElement('div');
    head.className = 'taught-head';
    const radio = document.createElement('input');
    radio.type = 'radio';
    radio.name = 'start-model';
    radio.value = row.id;
    radio.checked = row.id === start;
    radio.setAttribute('aria-label', `Start the page with “${row.name}”`);
    radio.title = 'Load this model when the page starts';
    radio.addEventListener('change', () => { if (radio.checked) this.setStartModel(row.id); });
    const name = textEl('span', row.name, 'taught-name');
    head.append(radio, name);
    const when = row.created ? new Date(row.created) : null;
    const meta = [when && !Number.isNaN(when.getTime()) ? when.toLocaleString() : null,
                  `${row.frames} ${row.source === 'photos' ? 'photos' : 'frames'}`,
                  row.roi ? 'region' : null, sizeText(row.size)].filter(Boolean).join(' · ');
    const actions = document.createElement('div');
    actions.className = 'taught-actions';
    const btn = (label, aria, fn) => {
      const b = textEl('button', label, 'btn small');
      b.type = 'button';
      b.setAttribute('aria-label', aria);
      b.addEventListener('click', fn);
      return b;
    };
    const use = btn('Use', `Use “${row.name}”`, () => this.useStored(row.id));
    use.dataset.action = 'use';
    const rename = btn('Rename', `Rename “${row.name}”`, () => this.startRename(li, row));
    rename.dataset.action = 'rename';
    const del = btn('Delete', `Delete “${row.name}”`, () => {
      // Two clicks: the first arms the button for a few seconds.
      if (del.dataset.armed === 'true') { this.remove(row.id); return; }
      del.dataset.armed = 'true';
      del.textContent = 'Really delete?';
      setTimeout(() => { del.dataset.armed = 'false'; del.textContent = 'Delete'; }, 4000);
    });
    del.dataset.action = 'delete';
    actions.append(use, rename, del);
    li.append(head, textEl('span', meta, 'taught-meta'), actions);
    return li;
  }

  startRename(li, row) {
    const name = li.querySelector('.taught-name');
    const input = document.createElement('input');
    input.type = 'text';
    input.value = row.name;
    input.maxLength = 120;
    input.className = 'taught-rename';
    input.setAttribute('aria-label', `New name for “${row.name}” (Enter to save, Escape to cancel)`);
    name.replaceWith(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const value = input.value.trim();
      if (save && value && value !== row.name) {
        try {
          await renameTaught(row.id, value);
          const m = this.getModel();
          if (m && m.storedId === row.id) m.name = value;
          this.note(`Renamed to “${value}”.`);
        } catch (e) {
          this.fail(`Could not rename “${row.name}”: ${errText(e)}`);
        }
      }
      await this.refreshList();
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); finish(true); }
      if (e.key === 'Escape') { e.preventDefault(); finish(false); }
    });
    input.addEventListener('blur', () => finish(true));
  }

  async remove(id) {
    const row = this.stored.find((r) => r.id === id);
    try {
      await deleteTaught(id);
      if (storedStartModel() === id) saveStartModel(null);
      if (this.taught && this.taught.storedId === id) this.taught.storedId = null;
      this.note(`Deleted “${row ? row.name : id}” from this browser${this.getModel()?.storedId === id ? ' (it stays loaded until another model is)' : ''}.`);
    } catch (e) {
      this.fail(`Could not delete it: ${errText(e)}`);
    }
    await this.refreshList();
  }

  setStartModel(id) {
    if (!saveStartModel(id)) {
      this.fail('This browser does not let the page store settings, so the start model cannot be remembered.');
      return;
    }
    const row = this.stored.find((r) => r.id === id);
    this.note(id ? `The page will start with “${row ? row.name : id}”.` : 'The page will start with its default model.');
    this.renderList();
  }

  // Loads a stored taught model; false (with a message) when it cannot.
  async useStored(id, { atStart = false } = {}) {
    let row, bytes;
    try {
      row = await getTaught(id);
      bytes = await loadTaughtBytes(id);
    } catch (e) {
      const text = atStart
        ? `The start model stored in this browser could not be read (${errText(e)}); the default model is used instead.`
        : `Could not read the taught model: ${errText(e)}`;
      this.fail(text);
      if (atStart && e.code === 'not_found') saveStartModel(null);
      return false;
    }
    const u8 = new Uint8Array(bytes);  // loadBytes copies a typed array: ours stays for "Download model"
    const ok = await this.models.loadBytes(u8, `${fileSafe(row.name)}.safetensors`, { name: row.name });
    if (ok) {
      const m = this.getModel();
      if (m) m.storedId = id;
      this.taught = { name: row.name, bytes: u8, storedId: id, record: row };
      this.updateControls();
    } else if (atStart) {
      this.fail(`The start model “${row.name}” could not be loaded; the default model is used instead.`);
    }
    return ok;
  }

  // At page start: the stored start model if there is one. False: load the default.
  async loadStartModel() {
    const id = storedStartModel();
    if (!id) return false;
    return this.useStored(id, { atStart: true });
  }

  // ---- downloads
  downloadModel() {
    const t = this.taught;
    if (!t) return;
    saveBlob(new Blob([t.bytes], { type: 'application/octet-stream' }), `${fileSafe(t.name)}.safetensors`);
    this.note(`Downloading “${fileSafe(t.name)}.safetensors”: open it with “Open model…”, or use it with the flawlens CLI.`);
  }

  async downloadPhotos() {
    if (!this.frames.length || this.photosBusy) return;
    this.photosBusy = true;
    this.updateControls();
    const { els } = this;
    const frames = [...this.frames];
    try {
      let zipSync;
      try {
        ({ zipSync } = await import('../vendor/fflate.mjs'));
      } catch (e) {
        throw new Error(`the zip library of the site (js/vendor/fflate.mjs) could not be loaded: ${errText(e)}`);
      }
      els.progress.hidden = false;
      const entries = {};
      const used = new Set();
      const unique = (base, ext) => {
        let n = `${base}${ext}`;
        for (let k = 2; used.has(n.toLowerCase()); ++k) n = `${base}-${k}${ext}`;
        used.add(n.toLowerCase());
        return n;
      };
      let canvas = null, ctx = null;
      for (let i = 0; i < frames.length; ++i) {
        els.progress.value = i / frames.length;
        this.note(`Packing photos: ${i + 1} of ${frames.length}…`);
        const f = frames[i];
        let bytes, fileName;
        if (f.file) {
          bytes = new Uint8Array(await f.file.arrayBuffer());
          const base = String(f.name || f.file.name).split('/').pop();
          const dot = base.lastIndexOf('.');
          fileName = unique(fileSafe(dot > 0 ? base.slice(0, dot) : base), dot > 0 ? base.slice(dot).toLowerCase() : '.png');
        } else {
          const b = f.bitmap;
          if (!canvas || canvas.width !== b.width || canvas.height !== b.height) {
            canvas = new OffscreenCanvas(b.width, b.height);
            ctx = canvas.getContext('2d');
          }
          ctx.clearRect(0, 0, b.width, b.height);
          ctx.drawImage(b, 0, 0);
          const blob = await canvas.convertToBlob({ type: 'image/png' });
          bytes = new Uint8Array(await blob.arrayBuffer());
          fileName = unique(`frame-${String(i + 1).padStart(4, '0')}`, '.png');
        }
        // PNG/JPEG are compressed already: stored, not deflated again.
        entries[`train/good/${fileName}`] = [bytes, { level: 0 }];
      }
      const zip = zipSync(entries);
      const zipName = `${fileSafe(this.taught?.name || els.name.value || 'good-parts')}-photos.zip`;
      saveBlob(new Blob([zip], { type: 'application/zip' }), zipName);
      this.note(`Downloading “${zipName}”: ${frames.length} good images as train/good/; ` +
                '“flawlens train FOLDER” takes the unpacked folder as it is.');
    } catch (e) {
      this.fail(`Could not pack the photos: ${errText(e)}. The frames are still here.`);
    } finally {
      this.photosBusy = false;
      els.progress.hidden = !this.recording && !this.busy;
      this.updateControls();
    }
  }

  updateControls() {
    const { els } = this;
    const ready = this.session.ready && Boolean(this.getModel());
    const recording = Boolean(this.recording);
    els.recordBtn.disabled = !recording && (!ready || !this.camera.running || this.busy);
    els.photosInput.disabled = !ready || this.busy || recording;
    els.folderInput.disabled = els.photosInput.disabled;
    for (const label of document.querySelectorAll(`label[for="${els.photosInput.id}"], label[for="${els.folderInput.id}"]`)) {
      label.setAttribute('aria-disabled', String(els.photosInput.disabled));
    }
    els.teachBtn.disabled = !ready || this.busy || recording || this.images === 0;
    els.clearBtn.disabled = this.busy || (this.images === 0 && this.frames.length === 0 && !recording);
    els.downloadModelBtn.disabled = !this.taught;
    els.downloadPhotosBtn.disabled = !this.frames.length || Boolean(this.photosBusy);
  }
}
