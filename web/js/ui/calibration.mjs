// The "Calibrate here" panel: records the live scores of good frames for a
// few seconds and sets the threshold from them with the C++ rule that
// `flawlens train` and `flawlens calibrate` use (src/fit/threshold.h, through
// the worker's thresholdForScores), at the model's target false-alarm rate.
// It only consumes scores, so it works with any source that reports them
// through `onScore`.

import { fmt, errText } from './dom.mjs';

// The target when the model does not state one (fit::kDefaultFalseAlarmRate).
const kDefaultRate = 0.05;

export class CalibrationPanel {
  // els: {seconds, button, progress}; camera: {running, frozen};
  // threshold: ThresholdPanel; getModel() -> the loaded model or null.
  constructor({ els, camera, threshold, getModel, messages, session }) {
    this.els = els;
    this.session = session;
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
    const scores = rec.scores.filter(Number.isFinite);
    const modelRate = this.getModel()?.info?.falseAlarmRate;
    const rate = Number.isFinite(modelRate) && modelRate > 0 ? modelRate : kDefaultRate;
    let r;
    try {
      r = await this.session.call('thresholdForScores', { scores, rate });
    } catch (e) {
      messages.showError(`Calibration failed: ${errText(e)}. Threshold unchanged; record for longer.`);
      return;
    }
    await this.threshold.useCalibration({ threshold: r.threshold, calibratedAt: new Date().toISOString(),
                                          frames: r.frames, rate: r.rate, extrapolated: r.extrapolated });
    const warn = r.warnings && r.warnings.length ? ` Note: ${r.warnings.join('; ')}.` : '';
    messages.setStatus(`Calibrated on ${r.frames} good frames: threshold ${fmt(r.threshold, 3)}, at which ${r.words} ` +
                       `should be flagged.${warn}`);
  }

  setEnabled(enabled) {
    this.els.button.disabled = !enabled;
  }
}
