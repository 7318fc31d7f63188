// The Teach panel's fit: the worker fits the model on the collected frames, the page loads it and
// says what its threshold means.
// Methods of TeachPanel (../ui/teach.mjs), mixed into its prototype: `this` is the panel.
import { errText } from '../ui/dom.mjs';
import { minFit, stamp, fileSafe } from './shared.mjs';

// Progress from the worker: a number in [0, 1] or {fraction|done/total, stage}.
function progressFraction(p) {
  if (typeof p === 'number') return p;
  if (p && typeof p === 'object') {
    if (typeof p.fraction === 'number') return p.fraction;
    if (typeof p.done === 'number' && p.total > 0) return p.done / p.total;
  }
  return null;
}

export const fitMethods = {
  enoughFrames() {
    return this.images >= minFit(this);
  },

  tooFewText() {
    return `Too few good frames to teach: ${this.images}; at least ${minFit(this)} are needed, from different moments or ` +
           'parts — record for a few more seconds (about 20 frames).';
  },

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
    const words = r.info?.falseAlarmWords;
    const meaning = words
      ? ` Threshold ${c.threshold.toFixed(2)}: ${words} are flagged, estimated from ${c.goodImages} ` +
        `frames scored by models that did not see them (${r.groups} parts or time blocks).`
      : '';
    const warnings = Array.isArray(r.warnings) && r.warnings.length ? ` Note: ${r.warnings.join('; ')}.` : '';
    this.note(`Taught “${name}” on ${this.images} good frames; it is in use now.${meaning}${warnings}`,
              warnings ? 'error' : undefined);
    await this.store();
  },

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
  },
};
