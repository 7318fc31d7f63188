// The live score history: a line of the last scores with the threshold as a
// dashed line, drawn at the canvas's CSS size times the device pixel ratio.

let themeCache = null;

// Colours from the page's CSS variables (light or dark theme).
function themeColors() {
  if (!themeCache) {
    const styles = getComputedStyle(document.documentElement);
    themeCache = { bad: styles.getPropertyValue('--bad').trim() || '#b3261e',
                   accent: styles.getPropertyValue('--accent').trim() || '#2b6cb0' };
  }
  return themeCache;
}

export function forgetThemeColors() {
  themeCache = null;
}

// scores: the newest last, at most `capacity`; the newest is at the right edge.
export function drawSparkline(canvas, scores, threshold, capacity) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(50, Math.round(canvas.clientWidth * dpr)), h = Math.max(20, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  const s = scores;
  if (!s.length) return;
  const thr = threshold;
  // Range: threshold and the 95th percentile (rare huge spikes are clipped at
  // the top so normal frame-to-frame variation stays readable).
  const sorted = [...s].sort((a, b) => a - b);
  let lo = Math.min(thr, sorted[0]), hi = Math.max(thr, sorted[Math.floor(0.95 * (sorted.length - 1))]);
  const pad = (hi - lo) * 0.15 || 1;
  lo -= pad; hi += pad;
  const y = (v) => Math.max(1, Math.min(h - 1, h - ((v - lo) / (hi - lo)) * h));
  const x = (i) => (i / (capacity - 1)) * w;
  const colors = themeColors();
  ctx.strokeStyle = colors.bad;
  ctx.setLineDash([4 * dpr, 4 * dpr]);
  ctx.lineWidth = dpr;
  ctx.beginPath();
  ctx.moveTo(0, y(thr));
  ctx.lineTo(w, y(thr));
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.strokeStyle = colors.accent;
  ctx.lineWidth = 1.5 * dpr;
  ctx.beginPath();
  const off = capacity - s.length;
  s.forEach((v, i) => (i ? ctx.lineTo(x(i + off), y(v)) : ctx.moveTo(x(i + off), y(v))));
  ctx.stroke();
  const last = s[s.length - 1];
  ctx.fillStyle = last >= thr ? colors.bad : colors.accent;
  ctx.beginPath();
  ctx.arc(x(capacity - 1), y(last), 3 * dpr, 0, Math.PI * 2);
  ctx.fill();
}
