// The "Calibrate here" panel: records the live scores of good frames for a
// few seconds and sets the threshold from them (the rule is in
// ../calibrate.mjs). It only consumes scores, so it works with any source
// that reports them through `onScore`.

import { thresholdFromGoodScores } from '../calibrate.mjs';
import { fmt } from './dom.mjs';

export class CalibrationPanel {
  // els: {seconds, button, progress}; camera: {running, frozen};
  // threshold: ThresholdPanel; getModel() -> the loaded model or null.
  constructor({ els, camera, threshold, getModel, messages }) {
    this.els = els;
    this.camera = camera;
    this.threshold = threshold;
    this.getModel = getModel;
    this.messages = messages;
    this.recording = null;  // {start, durationMs, scores}
    els.button.addEventListener('click', () => this.toggle());
  }

  get active() { return this.recording !== null; }

  toggle() {
    const { els, messages } = this;
    if (this.recording) { this.finish(true); return; }
    if (!this.camera.running) { messages.showError('Start the camera first: calibration records live frames.'); return; }
    if (this.camera.frozen) { messages.showError('Unfreeze the camera first: calibration needs live frames.'); return; }
    const seconds = Number(els.seconds.value) || 5;
    this.recording = { start: performance.now(), durationMs: seconds * 1000, scores: [] };
    els.progress.hidden = false;
    els.progress.value = 0;
    els.button.textContent = 'Stop recording';
    messages.setStatus(`Recording good frames for ${seconds} s… keep only good parts in view.`, { sticky: true });
  }

  // One live score; finishes the recording once its time is up.
  onScore(score, now) {
    const rec = this.recording;
    if (!rec) return;
    rec.scores.push(score);
    const frac = Math.min(1, (now - rec.start) / rec.durationMs);
    this.els.progress.value = frac;
    if (frac >= 1) this.finish(false);
  }

  cancel() {
    if (this.recording) this.finish(true);
  }

  async finish(cancelled) {
    const { els, messages } = this;
    const rec = this.recording;
    this.recording = null;
    els.progress.hidden = true;
    els.button.textContent = 'Record good frames';
    if (cancelled || !rec) { messages.setStatus('Calibration cancelled; threshold unchanged.'); return; }
    const r = thresholdFromGoodScores(rec.scores, this.getModel().info.threshold);
    if (!r.ok) { messages.showError(`Calibration failed: ${r.message}`); return; }
    await this.threshold.useCalibration({ threshold: r.threshold, calibratedAt: new Date().toISOString(),
                                          frames: r.frames, q99: r.q99, median: r.median, margin: r.margin });
    messages.setStatus(`Calibrated on ${r.frames} good frames: median ${fmt(r.median, 3)}, 99th percentile ${fmt(r.q99, 3)} ` +
                       `+ margin ${fmt(r.margin, 3)} → threshold ${fmt(r.threshold, 3)}.`);
  }

  setEnabled(enabled) {
    this.els.button.disabled = !enabled;
  }
}
