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
//
// The panel is split along its seams: ../teach/record.mjs (collecting frames and photos),
// ../teach/fit.mjs (fitting), ../teach/store.mjs (the taught models kept in this browser),
// ../teach/export.mjs (downloads); their methods are mixed into TeachPanel below.

import { loadStartModel as storedStartModel } from '../storage.mjs';
import { recordMethods } from '../teach/record.mjs';
import { fitMethods } from '../teach/fit.mjs';
import { storeMethods } from '../teach/store.mjs';
import { exportMethods } from '../teach/export.mjs';
import { stamp } from '../teach/shared.mjs';
export { photoGroup } from '../teach/record.mjs';
export { saveBlob } from '../teach/export.mjs';

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

Object.assign(TeachPanel.prototype, recordMethods, fitMethods, storeMethods, exportMethods);
