"""Replace the inputs of a `flawlens export-onnx --test-data` file with what a
station would compute itself with Pillow, to measure what its own resize
costs (compare.mjs then compares ONNX Runtime on these inputs with the
engine's score and map, which used the engine's preprocessing).

    python3 tests/onnx_export/station_preprocess.py MODEL.onnx TEST_DATA.json OUT.json
            [--resize area|pillow] [--round]

The steps are the ones the model's metadata lists: the region of interest
(metadata 'roi', fractions of the image) if any, the resize to the model's
resize size in float (no rounding to 8 bits), the crop, luma 0.299 R +
0.587 G + 0.114 B for a gray model, and for --input unit / normalized the
scaling. The resize, per axis:
  area    exact area averaging when shrinking (what OpenCV's INTER_AREA
          computes), bilinear with half-pixel centres when enlarging: the
          rule the engine follows (default);
  pillow  Pillow's BOX when shrinking, BILINEAR when enlarging (mode "F").
          BOX gives each source pixel a weight of 0 or 1, so for a factor
          that is not an integer it is not area averaging.
--round rounds the resized image to 8 bits (what OpenCV or Pillow return for
an 8-bit image). Needs numpy, onnx and for --resize pillow Pillow (Debian: python3-numpy,
python3-onnx, python3-pil).
"""
import base64
import json
import sys

import numpy as np
import onnx
from PIL import Image


def floats(a):
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def resize_matrix(n_in, n_out):
    """Rows: the weights of the source samples of each output sample."""
    m = np.zeros((n_out, n_in))
    s = n_in / n_out
    for i in range(n_out):
        if n_out <= n_in:  # area: the overlap of [i s, (i + 1) s) with each source pixel
            lo, hi = i * s, (i + 1) * s
            for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
                m[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
        else:  # bilinear, half-pixel centres, clamped at the borders
            u = min(max((i + 0.5) * s - 0.5, 0.0), n_in - 1)
            j0 = int(np.floor(u))
            j1 = min(j0 + 1, n_in - 1)
            m[i, j0] += 1 - (u - j0)
            m[i, j1] += u - j0
        m[i] /= m[i].sum()
    return m


def resize(plane, rw, rh, how):
    if how == "pillow":
        shrink = rw <= plane.shape[1] and rh <= plane.shape[0]
        f = Image.fromarray(plane.astype(np.float32), mode="F")
        return np.asarray(f.resize((rw, rh), Image.BOX if shrink else Image.BILINEAR),
                          dtype=np.float64)
    return resize_matrix(plane.shape[0], rh) @ plane @ resize_matrix(plane.shape[1], rw).T


def main(argv):
    how, rounded = "area", "--round" in argv
    argv = [a for a in argv if a != "--round"]
    if len(argv) == 5 and argv[3] == "--resize" and argv[4] in ("area", "pillow"):
        how = argv[4]
        argv = argv[:3]
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    onnx_path, data_path, out_path = argv
    meta = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    pre = json.loads(meta["flawlens.preprocess"])
    roi = json.loads(meta.get("roi", "null"))
    mode = meta["input_range"]
    data = json.load(open(data_path))
    _, c, h, w = data["input_shape"]
    rw, rh = pre.get("resize_w") or w, pre.get("resize_h") or h
    crop = pre.get("crop") or {"w": 0}
    for item in data["images"]:
        img = Image.open(item["path"]).convert("RGB")
        if roi:
            W, H = img.size
            # The CLI's rounding of the region (cli::RoiPixels) is to whole pixels.
            box = (round(roi["x"] * W), round(roi["y"] * H),
                   round((roi["x"] + roi["w"]) * W), round((roi["y"] + roi["h"]) * H))
            img = img.crop(box)
        rgb = np.asarray(img, dtype=np.float64)
        planes = [rgb[:, :, k] for k in range(3)]
        if c == 1:
            planes = [0.299 * planes[0] + 0.587 * planes[1] + 0.114 * planes[2]]
        out = []
        for p in planes:
            a = resize(p, rw, rh, how)
            if rounded:
                a = np.clip(np.round(a), 0, 255)
            if crop.get("w", 0) > 0:
                a = a[crop["y"]:crop["y"] + crop["h"], crop["x"]:crop["x"] + crop["w"]]
            out.append(a)
        x = np.stack(out)[None]
        if mode == "0..1":
            x = x / 255.0
        elif mode == "normalized":
            if pre.get("norm", "mean_std") != "mean_std":
                raise SystemExit("station_preprocess.py: local contrast normalisation is not done here")
            mean = np.array(pre.get("mean", [0, 0, 0]), dtype=np.float32)[:c].reshape(1, c, 1, 1)
            std = np.array(pre.get("std", [1, 1, 1]), dtype=np.float32)[:c].reshape(1, c, 1, 1)
            x = (x * np.float32(pre.get("scale", 1 / 255)) - mean) / std
        assert x.shape == (1, c, h, w), x.shape
        item["input"] = floats(x)
    json.dump(data, open(out_path, "w"))
    print(f"{out_path}: {len(data['images'])} inputs, resize '{how}'{', rounded to 8 bits' if rounded else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
