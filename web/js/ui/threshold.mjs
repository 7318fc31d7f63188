// The threshold panel: slider + number field, where the value came from
// (model, calibrated here, set by hand), what it means (the share of good
// parts the model expects to flag there, by the C++ rule through the
// worker's falseAlarmRate), and its per-model record in localStorage.
// `onChange` runs after every change so verdicts can follow.

import { round } from '../csv.mjs';
import { loadThreshold, saveThreshold, clearThreshold } from '../storage.mjs';
import { fmt, errText } from './dom.mjs';

export class ThresholdPanel {
  // els: {range, number, source, reset}
  constructor({ els, session, messages, onChange }) {
    this.els = els;
    this.session = session;
    this.messages = messages;
    this.onChange = onChange;
    this.model = null;
    this.value = NaN;
    this.source = 'model';
    this.calibration = null;  // the stored record for this model, if any

    els.range.addEventListener('input', () => this.apply(Number(els.range.value), 'manual'));
    els.range.addEventListener('change', () => this.persistManual());
    els.number.addEventListener('change', () => {
      const v = Number(els.number.value);
      if (els.number.value.trim() === '' || !Number.isFinite(v)) {
        els.number.value = round(this.value, 4);
        messages.showError('The threshold must be a number.');
        return;
      }
      this.apply(v, 'manual');
      this.persistManual();
    });
    els.reset.addEventListener('click', async () => {
      if (!this.model) return;
      clearThreshold(this.model.key);
      this.calibration = null;
      await this.apply(this.model.info.threshold, 'model');
      messages.setStatus(`Threshold reset to the model's value (${fmt(this.model.info.threshold, 3)}).`);
    });
  }

  // A new model: its stored threshold if this browser has one, else its own.
  async setModel(model) {
    this.model = model;
    const stored = loadThreshold(model.key);
    this.calibration = stored;
    const modelThr = model.info.threshold;
    this.setupRange(modelThr, stored ? stored.threshold : modelThr);
    await this.apply(stored ? stored.threshold : modelThr,
                     stored ? (stored.manual ? 'manual' : 'calibrated') : 'model');
  }

  // Uses and stores a threshold calibrated on good frames (a record from the
  // calibration panel); false if it could not be stored.
  async useCalibration(record) {
    this.calibration = record;
    const saved = saveThreshold(this.model.key, record);
    if (!saved) {
      this.messages.showError('The calibrated threshold is in use but could not be saved in this browser (storage unavailable).');
    }
    await this.apply(record.threshold, 'calibrated');
    return saved;
  }

  setupRange(modelThr, current) {
    const { range, number } = this.els;
    const spread = Math.max(Math.abs(modelThr), 1e-3);
    let lo = Math.min(0, modelThr - 2 * spread), hi = modelThr + 3 * spread;
    lo = Math.min(lo, current - spread * 0.5);
    hi = Math.max(hi, current + spread * 0.5);
    range.min = String(lo);
    range.max = String(hi);
    range.step = String((hi - lo) / 1000);
    range.disabled = false;
    number.disabled = false;
  }

  extendRange(v) {
    const { range } = this.els;
    const lo = Number(range.min), hi = Number(range.max);
    if (v < lo || v > hi) {
      const nlo = Math.min(lo, v), nhi = Math.max(hi, v);
      range.min = String(nlo);
      range.max = String(nhi);
      range.step = String((nhi - nlo) / 1000);
    }
  }

  async apply(value, source) {
    if (!Number.isFinite(value) || !this.model) return;
    const { els } = this;
    this.value = value;
    this.source = source;
    this.extendRange(value);
    els.range.value = String(value);
    if (document.activeElement !== els.number) els.number.value = round(value, 4);
    els.range.setAttribute('aria-valuetext', fmt(value, 3));
    const modelThr = this.model.info.threshold;
    if (source === 'model') {
      els.source.textContent = `Using the model's calibrated threshold (${fmt(modelThr, 3)}).`;
    } else if (source === 'calibrated' && this.calibration) {
      const c = this.calibration;
      const when = c.calibratedAt ? new Date(c.calibratedAt).toLocaleString() : 'earlier';
      els.source.textContent = `Calibrated here (${when}, ${c.frames} good frames). Model value: ${fmt(modelThr, 3)}.`;
    } else {
      els.source.textContent = `Set by hand (saved in this browser). Model value: ${fmt(modelThr, 3)}.`;
    }
    els.reset.disabled = source === 'model';
    if (this.onChange) this.onChange(value);
    try {
      await this.session.call('setThreshold', { value });
      await this.showMeaning(value);
    } catch (e) {
      this.messages.showError(`Could not set the threshold: ${errText(e)}`);
    }
  }

  // "≈ about 1 in 50 good parts flagged (estimated from 426 good photos)"
  // beside the source line; nothing for a model without a good-score summary.
  async showMeaning(value) {
    const info = this.model?.info;
    if (!info || !(info.goodImages > 0)) return;
    const r = await this.session.call('falseAlarmRate', { threshold: value });
    if (this.value !== value || r.rate === null) return;
    const base = this.els.source.textContent;
    this.els.source.textContent = `${base} At this threshold ${r.words} are expected to be flagged ` +
      `(estimated from ${info.goodImages} good ${info.goodImages === 1 ? 'image' : 'images'}).`;
  }

  persistManual() {
    if (!this.model) return;
    this.calibration = { threshold: this.value, calibratedAt: new Date().toISOString(), frames: 0, manual: true };
    saveThreshold(this.model.key, this.calibration);
  }
}
