#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_onnx_import.cc: small valid ONNX
models (python3-onnx), each behind the target's 4-byte header
(input W, input H, output selector, second output selector).

  make_fuzz_seeds.py tests/fuzz/corpus/fuzz_onnx_import
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


def init(name, *shape, dtype=np.float32):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(dtype), name)


def model(nodes, inits, c=3, h=8, w=8, opset=17, outputs=("y",)):
    graph = helper.make_graph(
        nodes, "seed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="seed")
    m.ir_version = 8
    return m.SerializeToString()


N = helper.make_node
seeds = {
    "conv_bn_relu": model(
        [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
         N("BatchNormalization", ["c", "g", "be", "m", "v"], ["n"], epsilon=1e-3),
         N("Relu", ["n"], ["y"])],
        [init("w", 4, 3, 3, 3), init("b", 4), init("g", 4), init("be", 4), init("m", 4),
         numpy_helper.from_array(np.ones(4, np.float32), "v")]),
    "pools": model(
        [N("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
           ceil_mode=1),
         N("AveragePool", ["p"], ["y"], kernel_shape=[2, 2], count_include_pad=1,
           pads=[1, 1, 0, 0])], []),
    "silu_se": model(
        [N("Conv", ["x", "w"], ["c"], group=3),
         N("Sigmoid", ["c"], ["s"]), N("Mul", ["c", "s"], ["a"]),
         N("GlobalAveragePool", ["a"], ["g"]), N("Conv", ["g", "w2"], ["f"]),
         N("HardSigmoid", ["f"], ["h"], alpha=1 / 6, beta=0.5), N("Mul", ["a", "h"], ["y"])],
        [init("w", 6, 1, 3, 3), init("w2", 6, 6, 1, 1)]),
    "two_outputs_concat": model(
        [N("Conv", ["x", "w"], ["s1"], pads=[1, 1, 1, 1]),
         N("HardSwish", ["s1"], ["a1"]),
         N("Conv", ["a1", "w2"], ["s2"], strides=[2, 2], auto_pad="SAME_UPPER"),
         N("Resize", ["s2", "", "sc"], ["r"], mode="linear"),
         N("Concat", ["a1", "r"], ["y"], axis=1)],
        [init("w", 4, 3, 3, 3), init("w2", 4, 4, 3, 3),
         numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")],
        outputs=("y", "s2")),
    "fp16_constant_clip": model(
        [N("Constant", [], ["k"], value=numpy_helper.from_array(
            np.array([0.5, -1, 2], np.float32).reshape(1, 3, 1, 1))),
         N("Sub", ["x", "k"], ["d"]), N("Conv", ["d", "w"], ["c"]),
         N("Clip", ["c", "lo", "hi"], ["y"])],
        [init("w", 5, 3, 1, 1, dtype=np.float16),
         numpy_helper.from_array(np.array(0, np.float32), "lo"),
         numpy_helper.from_array(np.array(6, np.float32), "hi")]),
    "reduce_flatten": model(
        [N("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1),
         N("Flatten", ["m"], ["y"], axis=1)], [], c=1),
    "resize_nearest_leaky": model(
        [N("LeakyRelu", ["x"], ["l"], alpha=0.1),
         N("Resize", ["l", "", "", "sz"], ["y"], mode="nearest",
           coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        [numpy_helper.from_array(np.array([1, 3, 16, 24], np.int64), "sz")], h=8, w=8),
}

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    # Selectors index the tensors nodes compute (Constant nodes skipped), as
    # the target lists them; W = H = 0: the model's own input size.
    m = onnx.load_from_string(data)
    tensors = [t for n in m.graph.node if n.op_type != "Constant" for t in n.output if t]
    wanted = [o.name for o in m.graph.output]
    sel = [tensors.index(wanted[0]), 0x80 | tensors.index(wanted[1]) if len(wanted) > 1 else 0]
    header = bytes([0, 0] + sel)
    with open(os.path.join(out, name), "wb") as f:
        f.write(header + data)
    print(name, len(data) + 4)
