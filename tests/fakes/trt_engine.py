"""What the fake TensorRT builds: a network read from the ONNX, an engine description, inspector JSON.

Plain data and rules, no fake classes: ``network_from_onnx`` reads inputs, outputs, Q/DQ and float16
tensors from the ONNX; ``plan_engine`` applies the rules a real build enforces (an optimization
profile for every dynamic input, no precision flags on a strongly typed network, the INT8 flag for
Q/DQ on a weakly typed one) and decides each layer's precision; ``inspector_json`` writes the engine
information in the format of the version family (8.x, 10.x: ``Format/Datatype``; 11.x: ``Format`` and
``DataType`` apart, ``I/O Tensors`` instead of ``Bindings``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
from onnx import TensorProto

ONNX_TO_TRT = {TensorProto.FLOAT: "FLOAT", TensorProto.FLOAT16: "HALF", TensorProto.INT8: "INT8",
               TensorProto.UINT8: "UINT8", TensorProto.INT32: "INT32", TensorProto.INT64: "INT64",
               TensorProto.BOOL: "BOOL", TensorProto.BFLOAT16: "BF16"}  # fmt: skip
TRT_TO_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32,
                "INT64": np.int64, "BOOL": np.bool_}  # fmt: skip
COMPUTE_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
PRECISION_OF_TYPE = {"FLOAT": "Float", "HALF": "Half", "INT8": "Int8", "BF16": "BFloat16"}
FORMATS = {  # TensorRT's own format descriptions (developer guide, engine inspector)
    "Int8": "Thirty-two wide channel vectorized row major Int8 format",
    "Half": "Channel major FP16 format where channel % 8 == 0",
    "Float": "Row major linear FP32",
}
FORMATS_11 = {"Int8": "Thirty-two wide channel vectorized row major format (kCHW32)",
              "Half": "Channel major format where channel % 8 == 0 (kHWC8)",
              "Float": "Row major linear format (kLINEAR)"}  # fmt: skip
DYNAMIC = "N/A due to dynamic shapes"


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str


@dataclass
class NetworkSpec:
    """What the ONNX parser put in the network."""

    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)  # {"name", "op", "quantized", "dtype"}
    nodes: list[tuple[str, str]] = field(default_factory=list)  # (name, ONNX op) of every node, Q/DQ too
    qdq: bool = False
    float16: bool = False


def _dims(value_info) -> list[int]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims]


def _spec(value_info) -> TensorSpec:
    return TensorSpec(value_info.name, _dims(value_info), ONNX_TO_TRT.get(value_info.type.tensor_type.elem_type, "FLOAT"))


def network_from_onnx(model_bytes: bytes) -> NetworkSpec:
    """Parse an ONNX as TensorRT's parser would see it (raises onnx's own errors on a bad file)."""
    model = onnx.load_from_string(bytes(model_bytes))
    onnx.checker.check_model(model)
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    types = {v.name: ONNX_TO_TRT.get(v.type.tensor_type.elem_type) for v in [*graph.value_info, *graph.input,
                                                                          *graph.output]}  # fmt: skip
    types.update({t.name: ONNX_TO_TRT.get(t.data_type) for t in graph.initializer})
    producers = {out: node for node in graph.node for out in node.output}
    spec = NetworkSpec(
        inputs=[_spec(v) for v in graph.input if v.name not in initializers], outputs=[_spec(v) for v in graph.output]
    )
    spec.qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    spec.float16 = "HALF" in types.values() or any(
        a.name == "to" and a.i == TensorProto.FLOAT16 for n in graph.node if n.op_type == "Cast" for a in n.attribute
    )
    spec.nodes = [(node.name or f"{node.op_type}_{i}", node.op_type) for i, node in enumerate(graph.node)]
    for i, node in enumerate(graph.node):
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        source = producers.get(node.input[0]) if node.input else None
        quantized = node.op_type in COMPUTE_OPS and source is not None and source.op_type == "DequantizeLinear"
        dtype = types.get(node.output[0]) or "FLOAT"
        spec.layers.append({"name": node.name or f"{node.op_type}_{i}", "op": node.op_type, "quantized": quantized,
                            "dtype": dtype})  # fmt: skip
    return spec


@dataclass
class BuildRequest:
    """What the builder config asked for."""

    flags: set[str]
    strongly_typed: bool
    explicit_batch: bool
    profile: dict[str, list[list[int]]]  # input name -> [min, opt, max]
    calibrated: bool
    detailed: bool
    device: str
    dla_core: int
    dla_cores: int


def _check_profile(spec: NetworkSpec, request: BuildRequest) -> str | None:
    for tensor in spec.inputs:
        if -1 not in tensor.shape:
            continue
        shapes = request.profile.get(tensor.name)
        if shapes is None:
            return f"Network has dynamic or shape inputs, but no optimization profile has been defined ({tensor.name})"
        for shape in shapes:
            if len(shape) != len(tensor.shape) or any(d != s for d, s in zip(tensor.shape, shape) if d != -1):
                return f"{tensor.name}: profile shape {shape} does not match the network input {tensor.shape}"
        low, opt, high = (np.array(s) for s in shapes)
        if not (np.all(low <= opt) and np.all(opt <= high) and np.all(low >= 1)):
            return f"{tensor.name}: profile needs 1 <= min <= opt <= max, got {shapes}"
    return None


def _layer_precision(layer: dict, spec: NetworkSpec, request: BuildRequest) -> str:
    int8 = "INT8" in request.flags
    if layer["quantized"] and (request.strongly_typed or int8):
        return "Int8"
    if request.calibrated and layer["op"] in COMPUTE_OPS:
        return "Int8"
    if request.strongly_typed:
        return PRECISION_OF_TYPE.get(layer["dtype"], "Float")
    if layer["dtype"] == "HALF" or "FP16" in request.flags:
        return "Half"
    return "Float"


def plan_engine(spec: NetworkSpec, request: BuildRequest, version: str) -> tuple[dict | None, str]:
    """The engine a build makes, or ``(None, error)`` where TensorRT's builder refuses."""
    if not request.explicit_batch:
        return None, "network was not created with NetworkDefinitionCreationFlag.EXPLICIT_BATCH"
    typed_flags = request.flags & {"FP16", "INT8", "BF16", "FP8"}
    if request.strongly_typed and typed_flags:
        return None, f"builder flags {sorted(typed_flags)} are not allowed for a strongly typed network"
    if spec.qdq and not request.strongly_typed and "INT8" not in request.flags:
        return None, "the network has Q/DQ layers: set BuilderFlag.INT8 (or build it strongly typed)"
    if "INT8" in request.flags and not spec.qdq and not request.calibrated:
        return None, "INT8 without Q/DQ layers needs a calibrator (IBuilderConfig.int8_calibrator)"
    if request.device == "DLA" and not 0 <= request.dla_core < request.dla_cores:
        return None, f"DLA core {request.dla_core} requested, the device has {request.dla_cores}"
    problem = _check_profile(spec, request)
    if problem:
        return None, problem
    layers = [{"name": layer["name"], "type": "CaskConvolution" if layer["op"] in COMPUTE_OPS else "PointWiseV2",
               "precision": _layer_precision(layer, spec, request)} for layer in spec.layers]  # fmt: skip
    if layers and layers[0]["precision"] != PRECISION_OF_TYPE.get(spec.inputs[0].dtype, "Float"):
        layers.insert(0, {"name": f"Reformatting CopyNode for Input Tensor 0 to {layers[0]['name']}",
                          "type": "Reformat", "precision": layers[0]["precision"]})  # fmt: skip
    engine = {"version": version, "inputs": [asdict(t) for t in spec.inputs],
              "outputs": [asdict(t) for t in spec.outputs], "profile": request.profile, "layers": layers,
              "detailed": request.detailed, "device": request.device}  # fmt: skip
    return engine, ""


def _tensor(name: str, dims: list[int], precision: str, family: int, dynamic: bool) -> dict:
    entry = {"Name": name, "Dimensions": dims}
    if family >= 10:
        entry["Location"] = "Device"
    if family >= 11:
        entry.update({"Format": DYNAMIC if dynamic else FORMATS_11[precision], "DataType": precision})
    else:
        entry["Format/Datatype"] = DYNAMIC if dynamic else FORMATS[precision]
    return entry


def inspector_json(engine: dict, shapes: dict[str, list[int]] | None) -> str:
    """``IEngineInspector.get_engine_information(JSON)`` of an engine, as its version writes it.

    ``shapes``: the input shapes of the execution context set on the inspector (``None``: no context);
    with dynamic inputs and no shapes, formats are not known ("N/A due to dynamic shapes").
    """
    family = 11 if engine["version"].startswith("11.") else 10 if engine["version"].startswith("10.") else 8
    dynamic = any(d < 0 for t in engine["inputs"] for d in t["shape"]) and not shapes  # a profile alone: not dynamic
    io = engine["inputs"] + engine["outputs"]
    if not engine["detailed"]:
        layers = [layer["name"] for layer in engine["layers"]]
    else:
        first = engine["inputs"][0]
        dims = (shapes or {}).get(first["name"], first["shape"])
        layers = [{"Name": layer["name"], "LayerType": layer["type"],
                   "Inputs": [_tensor(first["name"] if i == 0 else f"{layer['name']}_in", dims, "Float" if i == 0
                                      else layer["precision"], family, dynamic)],
                   "Outputs": [_tensor(f"{layer['name']}_out", dims, layer["precision"], family, dynamic)],
                   "TacticValue": "0x0000000000000000"} for i, layer in enumerate(engine["layers"])]  # fmt: skip
    info = {"Layers": layers}
    if family >= 11:
        info["I/O Tensors"] = [{"Name": t["name"], "IOMode": "Input" if t in engine["inputs"] else "Output",
                                "DataType": PRECISION_OF_TYPE.get(t["dtype"], "Float"), "Dimensions": t["shape"],
                                "Location": "Device", "IsShapeInferenceIO": False} for t in io]  # fmt: skip
    else:
        info["Bindings"] = [t["name"] for t in io]
    return json.dumps(info)


def run_engine(engine: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the fake engine computes: each output item filled with the mean of its input item."""
    first = arrays[engine["inputs"][0]["name"]]
    batch = first.shape[0]
    means = first.reshape(batch, -1).astype(np.float64).mean(axis=1)
    outputs = {}
    for out in engine["outputs"]:
        shape = [batch, *[d for d in out["shape"][1:]]]
        value = np.empty(shape, TRT_TO_NUMPY[out["dtype"]])
        value[...] = means.reshape(batch, *([1] * (len(shape) - 1)))
        outputs[out["name"]] = value
    return outputs
