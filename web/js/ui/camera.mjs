// The webcam: device list, start/stop, the per-frame loop, freeze, snapshot
// and the region of interest drawn on the overlay. What happens with each
// frame is up to the frame consumers (live detection is one); the overlay's
// content under the region outline comes from `hooks.paintOverlay`.
// A model can bring its own region (a taught model's card.roi, as fractions
// of the picture): `setModelRoi` applies it now or when the camera starts.

import { errText } from './dom.mjs';

const kMaxCaptureSide = 640;
const kMinRoiSide = 12;

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

// {x, y, w, h} fractions inside the picture, or null.
function validFraction(f) {
  if (!f || typeof f !== 'object') return null;
  const { x, y, w, h } = f;
  if (![x, y, w, h].every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
  if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > 1.000001 || y + h > 1.000001) return null;
  if (x === 0 && y === 0 && w >= 1 && h >= 1) return null;  // the whole picture
  return { x, y, w, h };
}

// The centre button's region: the model's input aspect (the picture's when
// none), as large as fits in 70 % of the picture's width and height.
export function centredRoi(W, H, aspect) {
  const a = aspect > 0 ? aspect : W / H;
  let w = 0.7 * W, h = w / a;
  if (h > 0.7 * H) { h = 0.7 * H; w = h * a; }
  w = Math.max(2, Math.round(w));
  h = Math.max(2, Math.round(h));
  return { x: Math.round((W - w) / 2), y: Math.round((H - h) / 2), w, h };
}

// A dragged region from corner s towards p with the aspect `a` (w / h): the
// larger of the two sides the pointer asks for, shrunk to stay inside W x H.
export function aspectRect(s, p, a, W, H) {
  const dx = p.x - s.x, dy = p.y - s.y;
  let w = Math.max(Math.abs(dx), Math.abs(dy) * a);
  const maxW = dx < 0 ? s.x : W - s.x, maxH = dy < 0 ? s.y : H - s.y;
  w = Math.min(w, maxW, maxH * a);
  const h = w / a;
  return { x: dx < 0 ? s.x - w : s.x, y: dy < 0 ? s.y - h : s.y, w, h };
}

export class Camera {
  // els: {select, toggle, stage, video, overlay, freezeBtn, snapshotBtn,
  //       roiCenterBtn, roiClearBtn}
  // hooks (all optional): onStart(), onStop(reason), onRoi(), onFreeze(frozen),
  //       onSnapshot(file), paintOverlay(ctx). onStop's reason is 'ended' when
  //       the track ended by itself (unplugged, taken by another app), else 'user'.
  constructor({ els, messages, hooks = {} }) {
    this.els = els;
    this.messages = messages;
    this.hooks = hooks;
    this.stream = null;
    this.running = false;
    this.frozen = false;
    this.captureW = 0;
    this.captureH = 0;
    this.roi = null;
    this.modelRoi = null;     // fractions {x, y, w, h} from the loaded model's card
    this.roiFromModel = false;
    this.roiGen = 0;  // bumped on every region change, so late results can be told apart
    // The loaded model's input aspect (width / height; 0: none) and whether it
    // stretches the region onto its input: then a drawn region keeps that
    // aspect, so the part is not distorted (a keep-aspect model pads instead).
    this.modelAspect = 0;
    this.modelStretches = false;
    this.drag = null;
    this.consumers = new Set();
    this.frameSeq = 0;

    els.toggle.addEventListener('click', () => (this.running ? this.stop() : this.start()));
    els.select.addEventListener('change', async () => {
      if (this.running) {
        this.stop();
        await this.start();
      }
    });
    if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      navigator.mediaDevices.addEventListener('devicechange', () => this.refreshList());
    }
    els.freezeBtn.addEventListener('click', () => this.toggleFreeze());
    els.snapshotBtn.addEventListener('click', () => this.snapshot());
    els.roiCenterBtn.addEventListener('click', () => this.setRoi(centredRoi(this.captureW, this.captureH, this.modelAspect)));
    els.roiClearBtn.addEventListener('click', () => this.setRoi(null));
    this.wireRoiDrag();
  }

  // `fn(camera)` runs on every video frame while the camera runs (also while
  // frozen; consumers check `frozen`). It must not block: a consumer still
  // busy with an earlier frame drops this one. Returns a remover.
  addFrameConsumer(fn) {
    this.consumers.add(fn);
    return () => this.consumers.delete(fn);
  }

  // True when the video has a picture to capture.
  get frameReady() {
    return this.running && this.els.video.readyState >= 2;
  }

  // The current video frame at capture size (the longer side at most
  // kMaxCaptureSide; the region of interest is in these pixels).
  captureFrame() {
    return createImageBitmap(this.els.video, {
      resizeWidth: this.captureW, resizeHeight: this.captureH, resizeQuality: 'medium',
    });
  }

  // The current frame inside the region of interest (the whole frame without
  // one), at capture size: what a recording of good frames keeps.
  async captureRegion() {
    const roi = this.roi;
    const frame = await this.captureFrame();
    if (!roi) return frame;
    try {
      return await createImageBitmap(frame, roi.x, roi.y, roi.w, roi.h);
    } finally {
      frame.close();
    }
  }

  // The region of interest as fractions of the picture (null: whole picture).
  get roiFraction() {
    const r = this.roi;
    if (!r || !this.captureW || !this.captureH) return null;
    const q = (v) => Math.round(v * 1e6) / 1e6;
    return { x: q(r.x / this.captureW), y: q(r.y / this.captureH), w: q(r.w / this.captureW), h: q(r.h / this.captureH) };
  }

  // The loaded model's region (fractions, or null). A region set from an
  // earlier model is cleared when the new one has none; a region drawn by
  // hand is kept.
  setModelRoi(frac) {
    this.modelRoi = validFraction(frac);
    if (!this.running) return;
    if (this.modelRoi) this.applyModelRoi();
    else if (this.roiFromModel) this.setRoi(null);
  }

  // The loaded model's input: {width, height} and its geometry ('stretch',
  // 'keep_aspect' or 'pixel_scale'); a region drawn from now on follows it.
  setModelInput(width, height, geometry) {
    this.modelAspect = width > 0 && height > 0 ? width / height : 0;
    this.modelStretches = this.modelAspect > 0 && geometry === 'stretch';
  }

  applyModelRoi() {
    this.setRoi(this.modelRoiPixels(), { fromModel: true });
  }

  modelRoiPixels() {
    const f = this.modelRoi;
    const w = this.captureW, h = this.captureH;
    const x = Math.min(w - 2, Math.round(f.x * w)), y = Math.min(h - 2, Math.round(f.y * h));
    return { x, y, w: Math.max(2, Math.min(w - x, Math.round(f.w * w))), h: Math.max(2, Math.min(h - y, Math.round(f.h * h))) };
  }

  async refreshList() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    let devices = [];
    try {
      devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    } catch {
      return;
    }
    const select = this.els.select;
    const current = select.value;
    const opts = [new Option('Default camera', '')];
    opts.push(new Option('Back camera (tablet/phone)', 'facing:environment'));
    opts.push(new Option('Front camera (tablet/phone)', 'facing:user'));
    devices.forEach((d, i) => {
      if (d.deviceId) opts.push(new Option(d.label || `Camera ${i + 1}`, `device:${d.deviceId}`));
    });
    select.replaceChildren(...opts);
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }

  videoConstraints() {
    const v = this.els.select.value;
    const c = { width: { ideal: 640 }, height: { ideal: 480 } };
    if (v.startsWith('device:')) c.deviceId = { exact: v.slice(7) };
    else if (v.startsWith('facing:')) c.facingMode = { ideal: v.slice(7) };
    return c;
  }

  async start() {
    if (this.running) return;
    const { els, messages } = this;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      messages.showError('This browser gives no camera access here (a camera needs https or localhost). Image uploads keep working.');
      return;
    }
    els.toggle.disabled = true;
    messages.setStatus('Starting the camera…', { sticky: true });
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: this.videoConstraints(), audio: false });
    } catch (e) {
      els.toggle.disabled = false;
      messages.setStatus('');
      messages.showError(cameraErrorMessage(e));
      return;
    }
    this.stream = stream;
    els.video.srcObject = stream;
    try {
      await els.video.play();
    } catch (e) {
      this.stop();
      messages.showError(`The camera video could not play: ${errText(e)}`);
      els.toggle.disabled = false;
      return;
    }
    for (const track of stream.getVideoTracks()) {
      track.addEventListener('ended', () => {
        if (this.stream === stream) {
          // The message first: a stop hook may replace it with a more specific one.
          messages.showError('The camera stopped (unplugged or taken by another app). Press “Start camera” to try again.');
          this.stop('ended');
        }
      });
    }
    const vw = els.video.videoWidth || 640, vh = els.video.videoHeight || 480;
    const s = Math.min(1, kMaxCaptureSide / Math.max(vw, vh));
    this.captureW = Math.max(2, Math.round(vw * s));
    this.captureH = Math.max(2, Math.round(vh * s));
    els.overlay.width = this.captureW;
    els.overlay.height = this.captureH;
    els.stage.style.setProperty('--ar', String(vw / vh));
    this.running = true;
    this.frozen = false;
    this.roi = null;  // the picture size may have changed
    this.roiFromModel = false;
    if (this.modelRoi) {
      this.roi = this.modelRoiPixels();
      this.roiFromModel = true;
      this.roiGen += 1;
    }
    performance.mark('flawlens:camera-on');
    this.hooks.onStart?.();
    els.stage.dataset.state = 'on';
    els.stage.dataset.frozen = 'false';
    els.toggle.textContent = 'Stop camera';
    els.toggle.setAttribute('aria-pressed', 'true');
    els.toggle.disabled = false;
    els.freezeBtn.setAttribute('aria-pressed', 'false');
    els.freezeBtn.textContent = 'Freeze';
    messages.clearError();
    messages.setStatus(`Camera on (${vw}×${vh}).`);
    this.refreshList();
    this.scheduleFrame();
  }

  stop(reason = 'user') {
    const { els } = this;
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.running = false;
    this.frozen = false;
    els.video.srcObject = null;
    els.stage.dataset.state = 'off';
    els.stage.dataset.frozen = 'false';
    els.toggle.textContent = 'Start camera';
    els.toggle.setAttribute('aria-pressed', 'false');
    const ctx = els.overlay.getContext('2d');
    ctx.clearRect(0, 0, els.overlay.width, els.overlay.height);
    this.hooks.onStop?.(reason);
  }

  scheduleFrame() {
    if (!this.running) return;
    const video = this.els.video;
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => this.onVideoFrame());
    else requestAnimationFrame(() => this.onVideoFrame());
  }

  onVideoFrame() {
    if (!this.running) return;
    this.frameSeq += 1;  // a new picture is on the video
    this.scheduleFrame();
    for (const fn of this.consumers) fn(this);
  }

  toggleFreeze() {
    if (!this.running) return;
    const { els } = this;
    this.frozen = !this.frozen;
    if (this.frozen) els.video.pause();
    else els.video.play().catch(() => {});
    this.hooks.onFreeze?.(this.frozen);
    els.stage.dataset.frozen = String(this.frozen);
    els.freezeBtn.setAttribute('aria-pressed', String(this.frozen));
    els.freezeBtn.textContent = this.frozen ? 'Unfreeze' : 'Freeze';
    this.messages.setStatus(this.frozen ? 'Frozen: the last result stays on screen.' : 'Live again.');
  }

  async snapshot() {
    if (!this.running) return;
    const video = this.els.video;
    const c = document.createElement('canvas');
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext('2d').drawImage(video, 0, 0);
    const blob = await new Promise((res) => c.toBlob(res, 'image/png'));
    if (!blob) { this.messages.showError('Could not take a snapshot.'); return; }
    const stamp = new Date().toISOString().slice(11, 19).replace(/:/g, '-');
    await this.hooks.onSnapshot?.(new File([blob], `snapshot-${stamp}.png`, { type: 'image/png' }));
  }

  setRoi(roi, { fromModel = false } = {}) {
    this.roi = roi;
    this.roiFromModel = Boolean(roi) && fromModel;
    this.roiGen += 1;
    this.hooks.onRoi?.();
    this.drawOverlay();
    this.messages.setStatus(roi ? `Region of interest${fromModel ? ' (from the model)' : ''}: ${roi.w}×${roi.h} px at (${roi.x}, ${roi.y}).`
                                : 'Region of interest cleared: whole picture.');
  }

  drawOverlay() {
    const overlay = this.els.overlay;
    const ctx = overlay.getContext('2d');
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    this.hooks.paintOverlay?.(ctx);
    const roi = this.drag ? this.drag.rect : this.roi;
    if (roi) {
      ctx.save();
      const lw = Math.max(1.5, overlay.width / 320);
      ctx.lineWidth = lw;
      ctx.setLineDash([lw * 4, lw * 3]);
      ctx.strokeStyle = '#ffffff';
      ctx.shadowColor = 'rgba(0,0,0,0.8)';
      ctx.shadowBlur = 3;
      ctx.strokeRect(roi.x, roi.y, roi.w, roi.h);
      ctx.restore();
    }
  }

  // ROI: drag on the picture (pointer events: mouse, pen and touch).
  wireRoiDrag() {
    const overlay = this.els.overlay;
    const point = (e) => {
      const rect = overlay.getBoundingClientRect();
      const x = ((e.clientX - rect.left) / rect.width) * overlay.width;
      const y = ((e.clientY - rect.top) / rect.height) * overlay.height;
      return { x: Math.max(0, Math.min(overlay.width, x)), y: Math.max(0, Math.min(overlay.height, y)) };
    };
    overlay.addEventListener('pointerdown', (e) => {
      if (!this.running) return;
      e.preventDefault();
      overlay.setPointerCapture(e.pointerId);
      const p = point(e);
      this.drag = { start: p, rect: { x: p.x, y: p.y, w: 0, h: 0 } };
    });
    overlay.addEventListener('pointermove', (e) => {
      if (!this.drag) return;
      const p = point(e), s = this.drag.start;
      this.drag.rect = this.modelStretches
        ? aspectRect(s, p, this.modelAspect, overlay.width, overlay.height)
        : { x: Math.min(s.x, p.x), y: Math.min(s.y, p.y), w: Math.abs(p.x - s.x), h: Math.abs(p.y - s.y) };
      this.drawOverlay();
    });
    const endDrag = () => {
      if (!this.drag) return;
      const r = this.drag.rect;
      this.drag = null;
      if (r.w >= kMinRoiSide && r.h >= kMinRoiSide) {
        this.setRoi({ x: Math.round(r.x), y: Math.round(r.y), w: Math.round(r.w), h: Math.round(r.h) });
      } else {
        this.drawOverlay();
      }
    };
    overlay.addEventListener('pointerup', endDrag);
    overlay.addEventListener('pointercancel', endDrag);
  }

  updateControls(hasModel) {
    const { els } = this;
    const live = this.running;
    els.freezeBtn.disabled = !live;
    els.snapshotBtn.disabled = !live || !hasModel;
    els.roiCenterBtn.disabled = !live;
    els.roiClearBtn.disabled = !live || !this.roi;
  }
}
