// The detail dialog of one gallery image: the original and the heatmap over
// it side by side, with previous/next in score order (arrow keys too).

import { paintMap, drawMapOver } from '../colormap.mjs';
import { textEl, fmt } from './dom.mjs';

export class DetailView {
  // els: {dialog, title, close, summary, original, overlay, opacity, prev, next}
  constructor({ els, gallery, getThreshold }) {
    this.els = els;
    this.gallery = gallery;
    this.getThreshold = getThreshold;
    this.id = null;
    this.cache = { id: null, bitmap: null };  // decoded once per opened image

    const dialog = els.dialog;
    els.close.addEventListener('click', () => dialog.close());
    els.prev.addEventListener('click', () => this.step(-1));
    els.next.addEventListener('click', () => this.step(1));
    els.opacity.addEventListener('input', () => this.render());
    dialog.addEventListener('keydown', (e) => {
      if (e.target instanceof HTMLInputElement) return;
      if (e.key === 'ArrowLeft') { e.preventDefault(); this.step(-1); }
      if (e.key === 'ArrowRight') { e.preventDefault(); this.step(1); }
    });
    dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); });
    dialog.addEventListener('close', () => {
      if (this.cache.bitmap) this.cache.bitmap.close();
      this.cache.id = null;
      this.cache.bitmap = null;
      gallery.focusItem(this.id);
    });
  }

  open(id) {
    this.id = id;
    this.render();
    if (!this.els.dialog.open) this.els.dialog.showModal();
  }

  // Re-draws the open dialog (threshold or scores changed).
  refresh() {
    if (this.els.dialog.open) this.render();
  }

  step(delta) {
    const items = this.gallery.sorted();
    const idx = items.findIndex((x) => x.id === this.id);
    const next = items[idx + delta];
    if (next) this.open(next.id);
  }

  async render() {
    const { els, cache } = this;
    const it = this.gallery.find(this.id);
    if (!it) { if (els.dialog.open) els.dialog.close(); return; }
    const bad = this.gallery.isAnomalous(it);
    els.title.textContent = it.name;
    const verdict = textEl('span', bad ? 'Anomaly' : 'OK', 'verdict');
    verdict.dataset.verdict = bad ? 'anomaly' : 'ok';
    els.summary.replaceChildren(
      verdict,
      textEl('span', `Score ${fmt(it.score, 3)} (threshold ${fmt(this.getThreshold(), 3)})`),
      textEl('span', it.width ? `${it.width} × ${it.height} px` : ''),
      textEl('span', it.timings ? `${fmt(it.timings.totalMs, 1)} ms` : ''),
    );
    const items = this.gallery.sorted();
    const idx = items.findIndex((x) => x.id === it.id);
    els.prev.disabled = idx <= 0;
    els.next.disabled = idx >= items.length - 1;
    // Decode once per opened image (the opacity slider redraws often).
    let bitmap = cache.id === it.id ? cache.bitmap : null;
    if (cache.id !== it.id) {
      try {
        bitmap = await createImageBitmap(it.blob);
      } catch {
        bitmap = null;
      }
      if (this.id !== it.id) { if (bitmap) bitmap.close(); return; }
      if (cache.bitmap) cache.bitmap.close();
      cache.id = it.id;
      cache.bitmap = bitmap;
    }
    const w = bitmap ? bitmap.width : (it.width || 256), h = bitmap ? bitmap.height : (it.height || 256);
    for (const c of [els.original, els.overlay]) {
      c.width = w;
      c.height = h;
      const ctx = c.getContext('2d');
      ctx.clearRect(0, 0, w, h);
      if (bitmap) ctx.drawImage(bitmap, 0, 0);
    }
    const ctx = els.overlay.getContext('2d');
    const mapCanvas = document.createElement('canvas');
    paintMap(mapCanvas, it.map, it.mapWidth, it.mapHeight, it.mapLow, it.mapHigh);
    const sx = it.width ? w / it.width : 1, sy = it.height ? h / it.height : 1;
    drawMapOver(ctx, mapCanvas, it.mapRect, sx, sy, Number(els.opacity.value));
    ctx.save();
    ctx.strokeStyle = 'rgba(255,255,255,0.7)';
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = Math.max(1, w / 300);
    ctx.strokeRect(it.mapRect.x * sx, it.mapRect.y * sy, it.mapRect.w * sx, it.mapRect.h * sy);
    ctx.restore();
  }
}
