"""Dynamic int8 copy of an ONNX model, the graph onnxruntime's
quantize_dynamic(per_channel=True, weight_type=QInt8) writes, made with the
`onnx` package alone (Debian's python3-onnx; no onnxruntime in Python):

  every MatMul whose second input is a 2-D float initializer W (K, N) becomes
    DynamicQuantizeLinear(A) -> A_q (uint8), A_scale, A_zero_point
    MatMulInteger(A_q, W_q, A_zero_point, W_zero_point) -> int32
    Cast(float) * (A_scale * W_scale)
  with W_q int8 per output column, symmetric (W_scale = max|W| / 127, zero
  points 0) — what sentence-transformers' model_qint8_avx512_vnni.onnx holds.
  onnxruntime fuses the chain into DynamicQuantizeMatMul at load.

    /usr/bin/python3 bench/quantize_onnx.py IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def quantize(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, added, done = [], [], 0
    for n in g.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" and len(n.input) == 2 else None
        if w is None or len(w.dims) != 2 or w.data_type != TensorProto.FLOAT:
            nodes.append(n)
            continue
        W = numpy_helper.to_array(w).astype(np.float32)  # (K, N)
        scale = np.abs(W).max(axis=0) / 127.0
        scale[scale == 0] = 1.0
        Wq = np.clip(np.rint(W / scale), -127, 127).astype(np.int8)
        p = f"{n.name or n.output[0]}_q{done}"
        added += [numpy_helper.from_array(Wq, p + "_W"),
                  numpy_helper.from_array(scale.astype(np.float32), p + "_Wscale"),
                  numpy_helper.from_array(np.zeros(W.shape[1], np.int8), p + "_Wzp")]
        a = n.input[0]
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [a], [p + "_A", p + "_Ascale", p + "_Azp"], name=p + "_dql"),
            helper.make_node("MatMulInteger", [p + "_A", p + "_W", p + "_Azp", p + "_Wzp"], [p + "_acc"],
                             name=p + "_mmi"),
            helper.make_node("Cast", [p + "_acc"], [p + "_accf"], to=TensorProto.FLOAT, name=p + "_cast"),
            helper.make_node("Mul", [p + "_Ascale", p + "_Wscale"], [p + "_s"], name=p + "_scale"),
            helper.make_node("Mul", [p + "_accf", p + "_s"], [n.output[0]], name=p + "_out"),
        ]
        done += 1
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + added)
    return done


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: quantize_onnx.py IN.onnx OUT.onnx")
    model = onnx.load(sys.argv[1])
    n = quantize(model)
    onnx.checker.check_model(model)
    onnx.save(model, sys.argv[2])
    print(f"quantized {n} MatMul nodes of {sys.argv[1]} -> {sys.argv[2]} (dynamic uint8 x int8, per-channel)")


if __name__ == "__main__":
    main()
