"""Graph passes on an exported QDQ ONNX: int8 weight initializers and one Q/DQ pair per (tensor, scale).

After ``torch.onnx.export`` a quantized conv weight is ``float initializer -> QuantizeLinear ->
DequantizeLinear``. ``fold_weight_quantization`` stores the int8 result instead (``int8 initializer ->
DequantizeLinear``), so the file is about a quarter of the FP32 one and no runtime re-quantizes.
``merge_duplicate_qdq`` keeps one Q/DQ pair where a shared quantizer was applied twice to a tensor.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    info = np.iinfo(zero_point.dtype)
    # Multiply by the float32 reciprocal, as torch's fake-quant kernels do (not divide, as ONNX
    # QuantizeLinear does): at exact ties the two round differently, and the int8 weights must be
    # the ones the fake-quant model trained with.
    inv_scale = (np.float32(1.0) / scale.astype(np.float32)).astype(np.float32)
    q = np.round(x.astype(np.float32) * inv_scale) + zero_point.astype(np.int32)
    return np.clip(q, info.min, info.max).astype(zero_point.dtype)


def fold_weight_quantization(model: onnx.ModelProto) -> int:
    """Replace ``QuantizeLinear(constant)`` by its int8 (or uint8) result; returns how many were folded."""
    inits = _initializers(model)
    graph = model.graph
    folded, keep = 0, []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and all(i in inits for i in node.input):
            x, scale, zero_point = (numpy_helper.to_array(inits[i]) for i in node.input)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            q = _quantize(x.astype(np.float32), scale.astype(np.float32), zero_point, axis)
            graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
            folded += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    _drop_unused_initializers(model)
    return folded


def merge_duplicate_qdq(model: onnx.ModelProto) -> int:
    """Merge Q (and DQ) nodes that read the same tensor with the same scale and zero point."""
    graph = model.graph
    inits = _initializers(model)
    value = lambda name: inits[name].SerializeToString().replace(name.encode(), b"") if name in inits else name  # noqa: E731
    merged = 0
    for op in ("QuantizeLinear", "DequantizeLinear"):
        seen: dict[tuple, str] = {}
        rename: dict[str, str] = {}
        keep = []
        for node in graph.node:
            if node.op_type == op:
                key = (node.input[0], *(value(i) for i in node.input[1:]), *(str(a) for a in node.attribute))
                if key in seen:
                    rename[node.output[0]] = seen[key]
                    merged += 1
                    continue
                seen[key] = node.output[0]
            keep.append(node)
        for node in keep:
            for i, name in enumerate(node.input):
                if name in rename:
                    node.input[i] = rename[name]
        del graph.node[:]
        graph.node.extend(keep)
    _drop_unused_initializers(model)
    return merged


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Turn ``Constant`` nodes into initializers, so the passes below see every constant the same way."""
    graph = model.graph
    keep, moved = [], 0
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            moved += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return moved


def fold_constants(model: onnx.ModelProto, max_rounds: int = 50) -> int:
    """Evaluate every node whose inputs are constant (static ``Shape`` included), except Q/DQ.

    onnx-simplifier's constant folding would also fold ``DequantizeLinear(int8 weight)`` back into
    a float weight; this pass keeps Q/DQ and folds only the shape arithmetic around them. Each
    round lets shape inference see further (a folded Slice gives its output a static shape).
    """
    total = 0
    for _ in range(max_rounds):
        folded = _fold_constants_once(model)
        total += folded
        if not folded:
            break
    return total


def _fold_constants_once(model: onnx.ModelProto) -> int:
    from onnx.reference import ReferenceEvaluator

    model_inferred = onnx.shape_inference.infer_shapes(model)
    static = {}
    for vi in list(model_inferred.graph.value_info) + list(model_inferred.graph.input):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if dims and None not in dims:
            static[vi.name] = np.array(dims, np.int64)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    keep, folded = [], 0
    for node in model.graph.node:
        values = None
        if node.op_type == "Shape" and node.input[0] in static and not node.attribute:
            values = [static[node.input[0]]]
        elif (
            node.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and node.input
            and all(i in inits or i == "" for i in node.input)
        ):
            feeds = {i: inits[i] for i in node.input if i}
            single = onnx.helper.make_graph(
                [node],
                "fold",
                [onnx.helper.make_tensor_value_info(i, onnx.TensorProto.UNDEFINED, None) for i in feeds],
                [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output],
            )
            values = ReferenceEvaluator(onnx.helper.make_model(single, opset_imports=model.opset_import)).run(
                None, feeds
            )
        if values is None:
            keep.append(node)
            continue
        for name, value in zip(node.output, values):
            inits[name] = np.asarray(value)
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        folded += 1
    del model.graph.node[:]
    model.graph.node.extend(keep)
    _drop_unused_initializers(model)
    return folded


def finalize_qdq(model: onnx.ModelProto) -> dict[str, int]:
    """Run the passes on an exported QDQ model in place; returns what each did."""
    stats = {"constants": constants_to_initializers(model)}
    stats["weights_folded"] = fold_weight_quantization(model)
    stats["shape_ops_folded"] = fold_constants(model)
    stats["duplicates_merged"] = merge_duplicate_qdq(model)
    return stats
