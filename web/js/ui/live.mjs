// Live detection on camera frames: sends one frame at a time to the worker
// (frames that arrive while it is busy are dropped, never queued), shows the
// score, verdict, FPS, latency and sparkline, and paints the heatmap on the
// camera overlay. When a result comes back and a newer picture arrived
// meanwhile, that picture is captured at once rather than at the next video
// frame: the worker does not sit idle for up to a frame interval, and still
// only ever gets the newest picture.

import { paintMap, drawMapOver } from '../colormap.mjs';
import { drawSparkline, forgetThemeColors } from './sparkline.mjs';
import { fmt, errText } from './dom.mjs';

const kSparkPoints = 150;
const kAnnounceGapMs = 2500;
const kMaxFailures = 10;

export class LiveDetection {
  // els: {score, verdict, sparkline, fps, latency, engine, opacity}
  // getModel() / getThreshold(): the current model and threshold.
  // onScore(score, now): every accepted result (calibration listens here).
  // paused(): true while another panel has the worker to itself (teaching).
  constructor({ els, camera, session, messages, debug, getModel, getThreshold, onScore, paused = () => false }) {
    Object.assign(this, { els, camera, session, messages, debug, getModel, getThreshold, onScore, paused });
    this.inFlight = false;
    this.missed = 0;  // pictures that arrived while a detection ran
    this.errors = 0;
    this.last = null;
    this.resultTimes = [];
    this.scores = [];
    this.latencies = [];
    this.lastVerdict = null;
    this.lastAnnounce = 0;
    this.mapCanvas = document.createElement('canvas');
    this.mapScratch = {};
    els.opacity.addEventListener('input', () => camera.drawOverlay());
    window.addEventListener('resize', () => this.drawSparkline());
    window.matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', () => {
      forgetThemeColors();
      this.drawSparkline();
    });
  }

  // The camera's frame consumer.
  onFrame() {
    this.debug.framesSeen += 1;
    if (this.inFlight) { this.missed += 1; return; }
    if (this.camera.frozen) return;
    this.detect(false);
  }

  // A detection of picture `seq` ended: the newest picture that came
  // meanwhile is scored now; the others are dropped.
  catchUp(seq) {
    const missed = this.missed;
    this.missed = 0;
    const cam = this.camera;
    if (missed > 0 && cam.frameSeq > seq && cam.running && !cam.frozen && !this.paused()) {
      this.debug.framesDropped += missed - 1;
      this.detect(false);
    } else {
      this.debug.framesDropped += missed;
    }
  }

  onStart() {
    this.errors = 0;
    this.clearHistory();
  }

  onStop() {
    this.els.fps.textContent = '—';
    this.els.latency.textContent = '—';
  }

  // Frozen before any result (e.g. just after the region changed): score the
  // frozen picture once, after any detection still running has finished.
  onFreeze(frozen) {
    if (!frozen || this.last) return;
    const scoreFrozen = () => {
      if (!this.camera.frozen || this.last) return;
      if (this.inFlight) { setTimeout(scoreFrozen, 20); return; }
      this.detect(true);
    };
    scoreFrozen();
  }

  // Scores the video's current frame. A result is dropped if, while it was being
  // computed, the model or the region of interest changed, or the picture was
  // frozen (the frozen picture keeps the result it had) — unless `forFrozen`:
  // the one detection of a picture frozen before it had any result.
  async detect(forFrozen) {
    const cam = this.camera;
    const model = this.getModel();
    if (!this.session.ready || !model || !cam.frameReady) return;
    this.inFlight = true;
    const t0 = performance.now();
    const gen = model.generation;
    const roiGen = cam.roiGen;
    const seq = cam.frameSeq;
    try {
      const bitmap = await cam.captureFrame();
      const r = await this.session.call('detect', { bitmap, roi: cam.roi, threshold: this.getThreshold() }, [bitmap]);
      const now = this.getModel();
      if (!cam.running || !now || now.generation !== gen) return;
      if (cam.roiGen !== roiGen || cam.frozen !== forFrozen) return;
      this.errors = 0;
      this.onResult(r, performance.now() - t0);
    } catch (e) {
      // One bad frame is skipped; a run of failures stops the camera with a message.
      this.errors += 1;
      if (cam.running && this.errors === 1) this.messages.showError(`Live detection failed on a frame: ${errText(e)}`);
      if (cam.running && this.errors >= kMaxFailures) {
        this.messages.showError(`Live detection keeps failing, camera stopped: ${errText(e)}`);
        cam.stop();
      }
    } finally {
      this.inFlight = false;
      this.catchUp(seq);
    }
  }

  onResult(r, latencyMs) {
    const { els, debug } = this;
    const now = performance.now();
    const thr = this.getThreshold();
    this.last = r;
    this.resultTimes.push(now);
    while (this.resultTimes.length && now - this.resultTimes[0] > 2000) this.resultTimes.shift();
    this.latencies.push(latencyMs);
    if (this.latencies.length > 30) this.latencies.shift();
    this.scores.push(r.score);
    if (this.scores.length > kSparkPoints) this.scores.shift();
    if (debug.firstScoreAt === null) debug.firstScoreAt = now;
    debug.liveLog.push({ t: now, score: r.score, anomalous: r.score >= thr, latencyMs, totalMs: r.timings.totalMs });
    if (debug.liveLog.length > 5000) debug.liveLog.splice(0, 1000);
    if (this.onScore) this.onScore(r.score, now);
    els.score.textContent = fmt(r.score, 3);
    this.setVerdict(r.score);
    const n = this.resultTimes.length;
    const fps = n > 1 ? ((n - 1) * 1000) / (this.resultTimes[n - 1] - this.resultTimes[0]) : 0;
    els.fps.textContent = fps > 0 ? fps.toFixed(1) : '—';
    const lat = [...this.latencies].sort((a, b) => a - b)[this.latencies.length >> 1];
    els.latency.textContent = `${lat.toFixed(0)} ms`;
    els.engine.textContent = `${fmt(r.timings.totalMs, 1)} ms`;
    this.camera.drawOverlay();
    this.drawSparkline();
  }

  setVerdict(score) {
    const bad = score >= this.getThreshold();
    this.els.verdict.dataset.verdict = bad ? 'anomaly' : 'ok';
    this.els.verdict.textContent = bad ? 'Anomaly' : 'OK';
    const now = performance.now();
    if (this.lastVerdict !== bad && now - this.lastAnnounce > kAnnounceGapMs) {
      this.messages.announce(bad ? `Anomaly detected, score ${fmt(score, 2)}` : 'Back to OK');
      this.lastAnnounce = now;
      this.lastVerdict = bad;
    }
  }

  // The camera overlay's heatmap (the camera draws the region outline on top).
  paint(ctx) {
    const r = this.last;
    if (!r) return;
    const overlay = ctx.canvas;
    paintMap(this.mapCanvas, r.map, r.mapWidth, r.mapHeight, r.mapLow, r.mapHigh, this.mapScratch);
    const sx = overlay.width / r.width, sy = overlay.height / r.height;
    drawMapOver(ctx, this.mapCanvas, r.mapRect, sx, sy, Number(this.els.opacity.value));
  }

  drawSparkline() {
    drawSparkline(this.els.sparkline, this.scores, this.getThreshold(), kSparkPoints);
  }

  // The threshold changed: the verdict and the sparkline's line follow.
  refresh() {
    if (this.last) this.setVerdict(this.last.score);
    this.drawSparkline();
  }

  clearHistory() {
    const { els } = this;
    this.scores = [];
    this.resultTimes = [];
    this.latencies = [];
    this.last = null;
    els.score.textContent = '—';
    els.verdict.dataset.verdict = 'none';
    els.verdict.textContent = 'No frame';
    this.drawSparkline();
    if (this.camera.running) this.camera.drawOverlay();
  }
}
