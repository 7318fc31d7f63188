// tfjs-backend-wasm or onnxruntime-web in a dedicated worker (anchors.mjs),
// for bench_page.mjs: one message with the parameters, one answer.
import { measureAnchor } from './anchors.mjs';

self.onmessage = async ({ data }) => {
  try {
    const r = await measureAnchor(data);
    self.postMessage(r, [r.out.buffer, ...(r.features ? [r.features.buffer] : [])]);
  } catch (e) {
    self.postMessage({ error: String(e && e.stack || e) });
  }
};
