// The Teach panel's downloads: the taught model file and the collected photos as a zip
// (train/good/).
// Methods of TeachPanel (../ui/teach.mjs), mixed into its prototype: `this` is the panel.
import { errText } from '../ui/dom.mjs';
import { fileSafe } from './shared.mjs';

export function saveBlob(blob, fileName) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

export const exportMethods = {
  downloadModel() {
    const t = this.taught;
    if (!t) return;
    saveBlob(new Blob([t.bytes], { type: 'application/octet-stream' }), `${fileSafe(t.name)}.safetensors`);
    this.note(`Downloading “${fileSafe(t.name)}.safetensors”: open it with “Open model…”, or use it with the flawlens CLI.`);
  },

  async downloadPhotos() {
    if (!this.frames.length || this.photosBusy) return;
    this.photosBusy = true;
    this.updateControls();
    const { els } = this;
    const frames = [...this.frames];
    try {
      let zipSync;
      try {
        ({ zipSync } = await import('../vendor/fflate.mjs'));
      } catch (e) {
        throw new Error(`the zip library of the site (js/vendor/fflate.mjs) could not be loaded: ${errText(e)}`);
      }
      els.progress.hidden = false;
      const entries = {};
      const used = new Set();
      const unique = (base, ext) => {
        let n = `${base}${ext}`;
        for (let k = 2; used.has(n.toLowerCase()); ++k) n = `${base}-${k}${ext}`;
        used.add(n.toLowerCase());
        return n;
      };
      let canvas = null, ctx = null;
      for (let i = 0; i < frames.length; ++i) {
        els.progress.value = i / frames.length;
        this.note(`Packing photos: ${i + 1} of ${frames.length}…`);
        const f = frames[i];
        let bytes, fileName;
        if (f.file) {
          bytes = new Uint8Array(await f.file.arrayBuffer());
          const base = String(f.name || f.file.name).split('/').pop();
          const dot = base.lastIndexOf('.');
          fileName = unique(fileSafe(dot > 0 ? base.slice(0, dot) : base), dot > 0 ? base.slice(dot).toLowerCase() : '.png');
        } else {
          const b = f.bitmap;
          if (!canvas || canvas.width !== b.width || canvas.height !== b.height) {
            canvas = new OffscreenCanvas(b.width, b.height);
            ctx = canvas.getContext('2d');
          }
          ctx.clearRect(0, 0, b.width, b.height);
          ctx.drawImage(b, 0, 0);
          const blob = await canvas.convertToBlob({ type: 'image/png' });
          bytes = new Uint8Array(await blob.arrayBuffer());
          fileName = unique(`frame-${String(i + 1).padStart(4, '0')}`, '.png');
        }
        // PNG/JPEG are compressed already: stored, not deflated again.
        entries[`train/good/${fileName}`] = [bytes, { level: 0 }];
      }
      const zip = zipSync(entries);
      const zipName = `${fileSafe(this.taught?.name || els.name.value || 'good-parts')}-photos.zip`;
      saveBlob(new Blob([zip], { type: 'application/zip' }), zipName);
      this.note(`Downloading “${zipName}”: ${frames.length} good images as train/good/; ` +
                '“flawlens train FOLDER” takes the unpacked folder as it is.');
    } catch (e) {
      this.fail(`Could not pack the photos: ${errText(e)}. The frames are still here.`);
    } finally {
      this.photosBusy = false;
      els.progress.hidden = !this.recording && !this.busy;
      this.updateControls();
    }
  },
};
