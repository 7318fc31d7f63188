// "Calibrate here": turn the scores of good frames recorded at this spot into
// a threshold. Pure functions (unit-testable without a browser).

export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export const kMinCalibrationFrames = 10;

// threshold = q99 + margin,
// margin = max(0.25 * (q99 - median), 0.1 * |modelThreshold - median|, 0.02 * |q99|, 1e-3)
// The margin keeps normal frame-to-frame variation below the threshold while
// staying close to what this camera sees on good parts; the second term keeps
// a still scene (nearly identical scores) from giving a hair-trigger threshold.
export function thresholdFromGoodScores(scores, modelThreshold = NaN) {
  const finite = scores.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length < kMinCalibrationFrames) {
    return { ok: false, frames: finite.length,
             message: `Only ${finite.length} frames were scored; at least ${kMinCalibrationFrames} are needed. Record for longer.` };
  }
  const median = quantile(finite, 0.5);
  const q99 = quantile(finite, 0.99);
  const modelTerm = Number.isFinite(modelThreshold) ? 0.1 * Math.abs(modelThreshold - median) : 0;
  const margin = Math.max(0.25 * (q99 - median), modelTerm, 0.02 * Math.abs(q99), 1e-3);
  return { ok: true, frames: finite.length, median, q99, max: finite[finite.length - 1], margin,
           threshold: q99 + margin };
}
