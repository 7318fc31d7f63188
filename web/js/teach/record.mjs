// The Teach panel's collection: good frames from the camera (recording) and good photos, checked
// by the worker as they arrive, with the thumbnails and the count.
// Methods of TeachPanel (../ui/teach.mjs), mixed into its prototype: `this` is the panel.
import { errText } from '../ui/dom.mjs';
import { minFit } from './shared.mjs';

const kMaxInFlight = 2;      // frames captured or in the worker at once

const kMinGapMs = 25;        // at most 40 frames a second

const kMaxFrames = 600;      // kept bitmaps: 640x480 RGBA is 1.2 MB each

const kThumbs = 24;          // thumbnails shown in the strip (the newest)

const kThumbHeight = 48;

const kRejectStop = 20;      // consecutive rejected camera frames that stop a recording

const kImageExt = /\.(png|jpe?g|bmp|webp)$/i;

// The group of a photo: its name without extension and a leading
// "<letters><digits>_" tag (exp3_, cam1-), the rule of `flawlens train`
// (tools/cli/dataset.cc GroupKey).
export function photoGroup(name) {
  const stem = String(name).replace(/^.*\//, '').replace(/\.[^.]*$/, '');
  const m = /^[A-Za-z]+\d+[_-](.+)$/.exec(stem);
  return `photo:${m ? m[1] : stem}`;
}

// Worker error codes that reject one image, not the whole collection.
const kImageErrors = new Set(['black_frame', 'frozen_frame', 'bad_image', 'invalid_argument', 'non_finite']);

// "The 12 good frames so far are kept." (nothing to keep: says so).
function keptText(n) {
  if (n === 0) return 'No good frame was added yet.';
  return n === 1 ? 'The 1 good frame so far is kept.' : `The ${n} good frames so far are kept.`;
}

export const recordMethods = {
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
  },

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
  },

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
  },

  updateCount() {
    const { images } = this;
    let text = images === 0 ? 'No good frames yet.' : `${images} good ${images === 1 ? 'frame' : 'frames'}`;
    const skipped = this.rejected.black + this.rejected.frozen + this.rejected.other;
    if (skipped) text += `, ${skipped} skipped`;
    if (images > 0 && images < minFit(this)) text += ' — about 20 are needed';
    this.els.count.textContent = text;
    this.updateControls();
  },

  sourceKind() {
    const cam = this.frames.some((f) => f.source === 'camera');
    const pho = this.frames.some((f) => f.source === 'photos');
    return cam && pho ? 'both' : pho ? 'photos' : 'camera';
  },

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
  },

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
  },

  tick() {
    const rec = this.recording;
    if (!rec) return;
    const frac = Math.min(1, (performance.now() - rec.start) / rec.durationMs);
    this.els.progress.value = frac;
    if (frac >= 1) this.stopRecording('done');
  },

  // The camera's frame consumer.
  onFrame() {
    const rec = this.recording;
    if (!rec || this.inFlight >= kMaxInFlight || this.camera.frozen || !this.camera.frameReady) return;
    const now = performance.now();
    if (now - this.lastCapture < kMinGapMs) return;
    this.lastCapture = now;
    this.addCameraFrame(rec);
  },

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
  },

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
  },

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
  },

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
  },

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
  },
};
