// flawlens page: creates the UI modules (js/ui/) and wires them together.
// Each module owns its part of the DOM and its state; this file only passes
// callbacks between them. All inference runs in js/worker.mjs.
//
//   ui/session.mjs      the worker, its start-up options and the engine badge
//   ui/model.mjs        model loading (files, drops, bytes from code) + card
//   ui/threshold.mjs    threshold slider/number and its stored per-model value
//   ui/calibration.mjs  "Calibrate here" (consumes live scores)
//   ui/camera.mjs       stream, devices, freeze, snapshot, region of interest;
//                       hands every frame to its frame consumers
//   ui/live.mjs         live detection: one of the camera's frame consumers
//   ui/gallery.mjs      uploads, demo images, scoring queue, CSV
//   ui/detail.mjs       the detail dialog of one gallery image
//   ui/teach.mjs        "Teach": good frames / photos -> a taught model (kept
//                       in IndexedDB, downloadable), the start model
// A panel that records camera frames or produces a model plugs in the same
// way: camera.addFrameConsumer() / camera.captureFrame(), models.loadBytes().

import { byId } from './ui/dom.mjs';
import { Messages } from './ui/messages.mjs';
import { EngineSession } from './ui/session.mjs';
import { ModelPanel } from './ui/model.mjs';
import { ThresholdPanel } from './ui/threshold.mjs';
import { CalibrationPanel } from './ui/calibration.mjs';
import { Camera } from './ui/camera.mjs';
import { LiveDetection } from './ui/live.mjs';
import { Gallery } from './ui/gallery.mjs';
import { DetailView } from './ui/detail.mjs';
import { TeachPanel } from './ui/teach.mjs';
import { ensureCrossOriginIsolation } from './coi.mjs';
import { loadStartModel as storedStartModel } from './storage.mjs';
import { early } from './boot.mjs';

// Test / benchmark hook (read-only view; the page does not depend on it).
const debug = {
  liveLog: [], firstScoreAt: null, modelLoadedAt: null, errors: [], framesSeen: 0, framesDropped: 0,
  get modelInfo() { return models.model ? models.model.info : null; },
  get threshold() { return threshold.value; },
  get gallery() {
    return gallery.sorted().map((it) => ({ name: it.name, score: it.score, anomalous: gallery.isAnomalous(it), source: it.source }));
  },
  stats: () => session.stats(),
  // Scores and maps of the gallery (by name), for comparing engines.
  galleryResults: () => gallery.items.map((it) => ({
    name: it.name, score: it.score, rawScore: it.rawScore, mapWidth: it.mapWidth, mapHeight: it.mapHeight,
    map: it.map ? Array.from(it.map) : null,
  })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  // The engine the worker runs: {module: 'mt'|'st', threads, maxThreads, fallback}.
  get engine() { return session.state ? { ...session.state, timeline: undefined } : null; },
  get teach() { return teach.state; },
  get roi() { return camera.roi ? { ...camera.roi, fromModel: camera.roiFromModel } : null; },
};
window.__flawlens = debug;

const messages = new Messages({
  status: byId('status'), alert: byId('alert'), alertText: byId('alert-text'), alertClose: byId('alert-close'),
  announce: byId('live-announce'),
}, debug.errors);

const session = new EngineSession({ badge: byId('engine-badge'), messages, threadsSelect: byId('threads-select'),
                                    threadsHint: byId('threads-hint'), early: early.engine });
const getModel = () => models.model;
const getThreshold = () => threshold.value;

const models = new ModelPanel({
  els: { badge: byId('model-badge'), card: byId('model-card'), input: byId('model-input') },
  session, messages, debug, onLoaded: onModelLoaded,
});

const threshold = new ThresholdPanel({
  els: { range: byId('threshold-range'), number: byId('threshold-number'), source: byId('threshold-source'),
         reset: byId('threshold-reset') },
  session, messages, onChange: refreshVerdicts,
});

const camera = new Camera({
  els: {
    select: byId('camera-select'), toggle: byId('camera-toggle'), stage: byId('stage'), video: byId('video'),
    overlay: byId('overlay'), freezeBtn: byId('freeze-btn'), snapshotBtn: byId('snapshot-btn'),
    roiCenterBtn: byId('roi-center-btn'), roiClearBtn: byId('roi-clear-btn'),
  },
  messages,
  hooks: {
    onStart: () => { live.onStart(); updateControls(); },
    onStop: (reason) => { calibration.cancel(); teach.onCameraStop(reason); live.onStop(); updateControls(); },
    onRoi: () => { live.clearHistory(); updateControls(); },
    onFreeze: (frozen) => live.onFreeze(frozen),
    onSnapshot: (file) => gallery.addFiles([file], 'snapshot'),
    paintOverlay: (ctx) => live.paint(ctx),
  },
});

const calibration = new CalibrationPanel({
  els: { seconds: byId('calib-seconds'), button: byId('calib-btn'), progress: byId('calib-progress') },
  camera, threshold, getModel, messages,
  session,
});

const live = new LiveDetection({
  els: {
    score: byId('live-score'), verdict: byId('live-verdict'), sparkline: byId('sparkline'), fps: byId('live-fps'),
    latency: byId('live-latency'), engine: byId('live-engine'), opacity: byId('live-opacity'),
  },
  camera, session, messages, debug, getModel, getThreshold,
  onScore: (score, now) => calibration.onScore(score, now),
  paused: () => teach.recording,
});
// While good frames are recorded for teaching, they get the worker to themselves.
camera.addFrameConsumer(() => { if (!teach.recording) live.onFrame(); });

const gallery = new Gallery({
  els: {
    input: byId('image-input'), demoBtn: byId('demo-btn'), csvBtn: byId('csv-btn'), clearBtn: byId('clear-btn'),
    dropzone: byId('dropzone'), list: byId('gallery'), count: byId('gallery-count'), progress: byId('gallery-progress'),
  },
  session, messages, debug, getModel, getThreshold,
  canScore: requireEngine,
  onModelFile: (file) => models.openFile(file),
  onOpen: (id) => detail.open(id),
  onRendered: refreshVerdicts,
});

const teach = new TeachPanel({
  els: {
    seconds: byId('teach-seconds'), recordBtn: byId('teach-record-btn'), photosInput: byId('teach-photos-input'),
    folderInput: byId('teach-folder-input'), progress: byId('teach-progress'), count: byId('teach-count'),
    strip: byId('teach-strip'), name: byId('teach-name'), teachBtn: byId('teach-btn'), clearBtn: byId('teach-clear-btn'),
    downloadModelBtn: byId('teach-download-model-btn'), downloadPhotosBtn: byId('teach-download-photos-btn'),
    note: byId('teach-note'), list: byId('teach-list'), startDefault: byId('teach-start-default'),
  },
  camera, session, models, messages, getModel,
});
camera.addFrameConsumer(() => teach.onFrame());

const detail = new DetailView({
  els: {
    dialog: byId('detail'), title: byId('detail-title'), close: byId('detail-close'), summary: byId('detail-summary'),
    original: byId('detail-original'), overlay: byId('detail-overlay'), opacity: byId('detail-opacity'),
    prev: byId('detail-prev'), next: byId('detail-next'),
  },
  gallery, getThreshold,
});

// Verdicts everywhere follow the threshold (and re-scored gallery images).
function refreshVerdicts() {
  gallery.refreshVerdicts();
  live.refresh();
  detail.refresh();
}

function updateControls() {
  const hasModel = Boolean(models.model);
  camera.updateControls(hasModel);
  calibration.setEnabled(camera.running && hasModel);
  teach.updateControls();
}

function requireEngine() {
  if (!session.requireReady()) return false;
  if (!models.model) {
    messages.showError('No model is loaded. Open a .safetensors model first.');
    return false;
  }
  return true;
}

async function onModelLoaded(model, previous) {
  const card = model.info.card;
  const geometry = (card && card.fit && card.fit.geometry) || (model.info.pixelScale > 0 ? 'pixel_scale' : 'stretch');
  camera.setModelInput(model.info.inputWidth, model.info.inputHeight, geometry);
  camera.setModelRoi(card ? card.roi : null);
  await threshold.setModel(model);
  live.clearHistory();
  updateControls();
  const { info } = model;
  messages.setStatus(`Model “${model.name}” loaded (${info.inputWidth}×${info.inputHeight}, ${info.backend || 'auto'} backend).`);
  if (previous) messages.clearError();
  if (gallery.count) gallery.rescore();
  else if (!previous && !camera.frameReady) {
    // Nothing to score yet: the engine's first run happens now, not on the first frame.
    session.call('warmUp', { width: 640, height: 480 }).catch(() => {});
  }
}

async function main() {
  updateControls();
  // Hosts that send no isolation headers: js/coi.mjs registers coi-sw.js and
  // reloads once (never again in this tab), so that the threaded engine can run.
  if ((await ensureCrossOriginIsolation()) === 'reloading') return;
  camera.refreshList();
  if (!globalThis.Worker || !globalThis.WebAssembly) {
    session.markUnavailable();
    messages.showError('This browser has no WebAssembly or Web Workers; flawlens cannot run here.');
    models.markNone();
    return;
  }
  // The default model downloads while the engine starts (not after it).
  if (!storedStartModel()) models.prefetchDefault(early.model);
  if (!(await session.start())) {
    models.markNone();
    models.showCardHint('No model: the detection engine is not available.');
    return;
  }
  teach.refreshList();
  // A taught model chosen as the start model, else the site's default model.
  if (!(await teach.loadStartModel())) await models.loadDefault();
  messages.setStatus(models.model ? `Ready. Model “${models.model.name}”. Add images or start the camera.` : '');
}

main();
