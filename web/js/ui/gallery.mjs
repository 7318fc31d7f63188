// The image gallery: uploads (file picker, drop zone, files dropped anywhere
// on the page, snapshots, demo images), scoring them one at a time in the
// worker, the thumbnails sorted by score, re-scoring after a model change,
// and the CSV export. Model files among dropped files go to `onModelFile`.

import { toCsv, round } from '../csv.mjs';
import { textEl, fmt, errText } from './dom.mjs';

const kImageExt = /\.(png|jpe?g|bmp|webp|gif)$/i;
const kModelExt = /\.safetensors$/i;

export class Gallery {
  // els: {input, demoBtn, csvBtn, clearBtn, dropzone, list, count, progress}
  // canScore(): shows why not and returns false when images cannot be scored.
  // onOpen(id): a thumbnail was clicked. onRendered(): the thumbnails changed.
  constructor({ els, session, messages, debug, getModel, getThreshold, canScore, onModelFile, onOpen, onRendered }) {
    Object.assign(this, { els, session, messages, debug, getModel, getThreshold, canScore, onModelFile, onOpen, onRendered });
    this.items = [];
    this.nextItemId = 1;
    this.jobs = Promise.resolve();  // model loads and scoring runs, one after another
    this.renderQueued = false;

    els.input.addEventListener('change', () => {
      const files = [...els.input.files];
      els.input.value = '';
      this.addFiles(files);
    });
    els.dropzone.addEventListener('click', () => els.input.click());
    els.dropzone.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        els.input.click();
      }
    });
    els.demoBtn.addEventListener('click', () => this.loadDemo());
    els.clearBtn.addEventListener('click', () => this.clear());
    els.csvBtn.addEventListener('click', () => this.exportCsv());
    this.wirePageDrop();
  }

  get count() { return this.items.length; }

  isAnomalous(it) {
    return Number.isFinite(it.score) && it.score >= this.getThreshold();
  }

  sorted() {
    return [...this.items].sort((a, b) => (b.score - a.score) || (a.id - b.id));
  }

  find(id) {
    return this.items.find((x) => x.id === id);
  }

  focusItem(id) {
    const it = this.find(id);
    if (it && it.node) it.node.querySelector('.thumb').focus();
  }

  thumbLabel(it) {
    return `${it.name}: score ${fmt(it.score, 3)}, ${this.isAnomalous(it) ? 'anomaly' : 'OK'}. Open details.`;
  }

  makeThumb(it) {
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
    btn.addEventListener('click', () => this.onOpen(it.id));
    li.append(btn);
    it.node = li;
    return li;
  }

  // The verdicts follow the threshold without re-scoring.
  refreshVerdicts() {
    for (const it of this.items) {
      const node = it.node;
      if (!node) continue;
      const bad = this.isAnomalous(it);
      node.querySelector('.thumb').dataset.verdict = bad ? 'anomaly' : 'ok';
      const v = node.querySelector('.verdict');
      v.dataset.verdict = bad ? 'anomaly' : 'ok';
      v.textContent = bad ? 'Anomaly' : 'OK';
      node.querySelector('.thumb').setAttribute('aria-label', this.thumbLabel(it));
    }
  }

  // Batched to one DOM update per animation frame (scoring adds items one by one).
  render() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      const { els } = this;
      const items = this.sorted();
      for (const it of items) {
        if (!it.node) this.makeThumb(it);
        it.node.querySelector('.score').textContent = fmt(it.score, 3);
      }
      els.list.replaceChildren(...items.map((it) => it.node));
      if (this.onRendered) this.onRendered();
      els.count.textContent = String(items.length);
      els.csvBtn.disabled = items.length === 0;
      els.clearBtn.disabled = items.length === 0;
    });
  }

  queueJob(fn) {
    const p = this.jobs.then(fn, fn);
    this.jobs = p.catch(() => {});
    return p;
  }

  scoreBlob(blob) {
    return this.session.call('detect', { blob, threshold: this.getThreshold() });
  }

  addFiles(files, source = 'file') {
    const { els, messages } = this;
    const list = [...files];
    const models = list.filter((f) => kModelExt.test(f.name));
    const images = list.filter((f) => !kModelExt.test(f.name));
    if (models.length) {
      if (models.length > 1) messages.showError('Drop one model file at a time; loading the first one.');
      this.queueJob(() => this.onModelFile(models[0]));
    }
    if (!images.length) return Promise.resolve();
    return this.queueJob(async () => {
      if (!this.canScore()) return;
      const failures = [];
      let done = 0;
      els.progress.hidden = false;
      els.progress.max = images.length;
      els.progress.value = 0;
      messages.setStatus(`Scoring ${images.length} image${images.length === 1 ? '' : 's'}…`, { sticky: true });
      for (const file of images) {
        try {
          if (file.size === 0) throw new Error('empty file');
          if (file.type && !file.type.startsWith('image/') && !kImageExt.test(file.name)) {
            throw new Error(`not an image file (${file.type})`);
          }
          const r = await this.scoreBlob(file);
          const it = {
            id: this.nextItemId++, name: file.name || `image-${this.nextItemId}`, blob: file,
            url: URL.createObjectURL(file), source, modelGeneration: this.getModel().generation, ...r,
          };
          this.items.push(it);
          if (this.debug.firstScoreAt === null) this.debug.firstScoreAt = performance.now();
          this.render();
        } catch (e) {
          failures.push(`${file.name || 'image'} (${errText(e)})`);
        }
        els.progress.value = ++done;
      }
      els.progress.hidden = true;
      const ok = images.length - failures.length;
      if (failures.length) {
        messages.showError(`Could not score ${failures.length} of ${images.length} file${images.length === 1 ? '' : 's'}: ` +
                           `${failures.slice(0, 5).join('; ')}${failures.length > 5 ? '; …' : ''}. The gallery is unchanged otherwise.`);
      }
      const anomalies = this.items.filter((it) => this.isAnomalous(it)).length;
      messages.setStatus(`Scored ${ok} image${ok === 1 ? '' : 's'}. ${anomalies} of ${this.items.length} in the gallery flagged as anomalies.`);
    });
  }

  // After a model change: every image again with the new model (stops if the
  // model changes once more meanwhile; the newer run does the work).
  rescore() {
    return this.queueJob(async () => {
      const { messages } = this;
      const model = this.getModel();
      const gen = model.generation;
      messages.setStatus(`Re-scoring ${this.items.length} images with “${model.name}”…`, { sticky: true });
      const failures = [];
      for (const it of this.items) {
        if (this.getModel().generation !== gen) return;
        try {
          const r = await this.scoreBlob(it.blob);
          Object.assign(it, r, { modelGeneration: gen });
        } catch (e) {
          failures.push(`${it.name} (${errText(e)})`);
          it.score = NaN;
        }
      }
      this.render();
      if (failures.length) messages.showError(`Could not re-score: ${failures.join('; ')}`);
      messages.setStatus(`Re-scored ${this.items.length} images with “${model.name}”.`);
    });
  }

  async loadDemo() {
    const btn = this.els.demoBtn;
    btn.disabled = true;
    try {
      const base = new URL('../../model/demo/', import.meta.url);
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
      await this.addFiles(files, 'demo');
    } catch (e) {
      this.messages.showError(`Could not load the demo images: ${errText(e)}`);
    } finally {
      btn.disabled = false;
    }
  }

  clear() {
    for (const it of this.items) if (it.url) URL.revokeObjectURL(it.url);
    this.items = [];
    this.render();
    this.messages.setStatus('Gallery cleared.');
  }

  exportCsv() {
    const items = this.sorted();
    const thr = this.getThreshold();
    const model = this.getModel();
    const header = ['rank', 'file', 'score', 'raw_score', 'threshold', 'verdict', 'width', 'height',
                    'map_max', 'model', 'source', 'total_ms'];
    const rows = items.map((it, i) => {
      let mapMax = -Infinity;
      for (const v of it.map) if (v > mapMax) mapMax = v;
      return [i + 1, it.name, round(it.score, 5), round(it.rawScore, 5), round(thr, 5),
              this.isAnomalous(it) ? 'anomaly' : 'ok', it.width, it.height, round(mapMax, 5),
              model ? model.name : '', it.source, round(it.timings ? it.timings.totalMs : NaN, 2)];
    });
    const blob = new Blob([toCsv(header, rows)], { type: 'text/csv' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `flawlens-results-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    this.messages.setStatus(`Exported ${rows.length} rows as CSV.`);
  }

  // Files dropped anywhere on the page (images and model files).
  wirePageDrop() {
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
      this.addFiles(e.dataTransfer.files);
    });
  }
}
