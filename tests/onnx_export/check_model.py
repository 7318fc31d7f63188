"""The ONNX project's own checks on a model written by `flawlens export-onnx`.

    python3 tests/onnx_export/check_model.py MODEL.onnx...

For each file: onnx.checker with full_check (the operator schemas of the
model's opset and strict shape inference), and shape inference must give the
graph outputs the shapes the file declares. Needs the `onnx` module (Debian:
python3-onnx). Exit 0 when every file passes, 1 otherwise.
"""
import sys

import onnx
from onnx import checker, shape_inference


def dims(value_info):
    return [d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check(path):
    model = onnx.load(path)
    checker.check_model(model, full_check=True)
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    declared = {o.name: dims(o) for o in model.graph.output}
    got = {o.name: dims(o) for o in inferred.graph.output}
    if got != declared:
        raise ValueError(f"inferred output shapes {got} differ from the declared {declared}")
    return f"{path}: ok (opset {model.opset_import[0].version}, {len(model.graph.node)} nodes)"


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        try:
            print(check(path))
        except Exception as e:  # noqa: BLE001 - report every file
            print(f"{path}: FAILED: {e}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
