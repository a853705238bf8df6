"""What the fake TensorRT objects do, keyed ``"Class.member"`` (see FakeTensorRT).

Minimal and generic: the ONNX parser reads the real ONNX, the builder applies trt_engine's rules and
serializes an engine description, the runtime loads it back, the execution context checks its shapes
and addresses and computes trt_engine.run_engine on the fake device, the inspector writes the
version's JSON. GPU work (builder, runtime, engine, context, and destroying them) goes through the
fake CUDA driver's runtime rules, so a call from a thread without the objects' context fails.
"""

from __future__ import annotations

import json

import numpy as np

from tests.fakes.fake_tensorrt import FakeTensorRT, Opaque
from tests.fakes.trt_engine import (
    TRT_TO_NUMPY,
    BuildRequest,
    inspector_json,
    network_from_onnx,
    plan_engine,
    run_engine,
)

ENGINE_MAGIC = b"FAKETRT\0"
CACHE_MAGIC = b"FAKETC\0"
CALIBRATORS = ("IInt8Calibrator", "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2", "IInt8MinMaxCalibrator",
               "IInt8LegacyCalibrator")  # fmt: skip


def _major(api: FakeTensorRT) -> int:
    return int(api.version.split(".")[0])


def _log(api: FakeTensorRT, message: str) -> None:
    api.env.trt_log.append(message)


def _gpu_object(api: FakeTensorRT, name: str, call: str, **state):
    """A TensorRT object that owns GPU resources in the context current now (the runtime's rules)."""
    return api.new(name, ctx=api.env.driver.runtime_context(call), **state)


def _on_gpu(api: FakeTensorRT, obj, call: str) -> None:
    api.env.driver.require(api.state(obj)["ctx"], call)


def _destroy(api: FakeTensorRT, obj) -> None:
    """Destroying a GPU object frees its memory: the owner context must be the one the runtime would use."""
    ctx = api.state(obj).get("ctx")
    if ctx is None:
        return
    driver = api.env.driver
    current = driver.current() or driver.primary
    if current is not ctx:
        driver.violations.append(f"{type(obj).__name__} destroyed while the {current!r} is current, owner {ctx!r}")


# builder ----------------------------------------------------------------------------------------
def builder_init(api, self, logger) -> None:
    api.state(self)["ctx"] = api.env.driver.runtime_context("Builder()")


def create_network(api, self, flags=0):
    names = {name for name, value in api.classes["NetworkDefinitionCreationFlag"].__members__.items()
             if int(flags) >> value.value & 1}  # fmt: skip
    strongly_typed = "STRONGLY_TYPED" in names or _major(api) >= 11
    explicit_batch = "EXPLICIT_BATCH" in names or _major(api) >= 10
    return api.new("INetworkDefinition", spec=None, strongly_typed=strongly_typed, explicit_batch=explicit_batch)


def create_builder_config(api, self):
    """A config with TensorRT's documented defaults for the properties a builder (Polygraphy's too) reads."""
    enum = lambda cls, *names: next(api.classes[cls].__members__[n] for n in names if n in api.classes[cls].__members__)  # noqa: E731
    defaults = {"DLA_core": -1, "default_device_type": enum("DeviceType", "GPU"),
                "engine_capability": enum("EngineCapability", "STANDARD", "DEFAULT"),
                "profiling_verbosity": enum("ProfilingVerbosity", "LAYER_NAMES_ONLY")}  # fmt: skip
    return api.new("IBuilderConfig", flags=set(), profiles=[], pools={}, **defaults)


def build_serialized_network(api, self, network, config):
    _on_gpu(api, self, "Builder.build_serialized_network")
    net, cfg = api.state(network), api.state(config)
    if net["spec"] is None:
        _log(api, "build: the network is empty (the ONNX was not parsed)")
        return None
    verbosity = cfg.get("profiling_verbosity")
    device = cfg.get("default_device_type")
    request = BuildRequest(
        flags=set(cfg["flags"]), strongly_typed=net["strongly_typed"], explicit_batch=net["explicit_batch"],
        profile=cfg["profiles"][0] if cfg["profiles"] else {}, calibrated=False,
        detailed=verbosity is not None and verbosity.name == "DETAILED",
        device=device.name if device is not None else "GPU", dla_core=cfg.get("DLA_core", -1),
        dla_cores=api.env.dla_cores,
    )  # fmt: skip
    calibrator = cfg.get("int8_calibrator")
    if calibrator is not None and "INT8" in request.flags and not net["spec"].qdq:
        request.calibrated = _calibrate(api, calibrator, net["spec"], request)
    engine, error = plan_engine(net["spec"], request, api.version)
    if engine is None:
        _log(api, f"build failed: {error}")
        return None
    if cfg.get("timing_cache") is not None:
        api.state(cfg["timing_cache"])["entries"] += 1
    return api.new("IHostMemory", ENGINE_MAGIC + json.dumps(engine).encode())


def _calibrate(api, calibrator, spec, request: BuildRequest) -> bool:
    """TensorRT's calibration loop: batch size, cache, then batches of device pointers until None/[]."""
    batch = calibrator.get_batch_size()
    cache = calibrator.read_calibration_cache()
    if cache:
        return True
    names = [t.name for t in spec.inputs]
    driver, ctx = api.env.driver, api.env.driver.runtime_context("calibration")
    batches = 0
    while True:
        pointers = calibrator.get_batch(names)
        if not pointers:
            break
        if len(pointers) != len(names):
            raise TypeError(f"get_batch returned {len(pointers)} pointers for inputs {names}")
        for pointer, tensor in zip(pointers, spec.inputs):
            shape = request.profile.get(tensor.name, [tensor.shape] * 3)[1] if -1 in tensor.shape else tensor.shape
            nbytes = batch * int(np.prod(shape[1:])) * np.dtype(TRT_TO_NUMPY[tensor.dtype]).itemsize
            driver.allocation(int(pointer), nbytes, ctx, "calibration batch")
        batches += 1
    if batches == 0:
        _log(api, "calibration: the calibrator gave no batch")
        return False
    calibrator.write_calibration_cache(CACHE_MAGIC + f"{batches} batches".encode())
    return True


def calibrator_setter(api, self, value) -> None:
    if value is not None:
        if not isinstance(value, tuple(api.classes[c] for c in CALIBRATORS if c in api.classes)):
            raise TypeError(f"int8_calibrator: expected an IInt8Calibrator, got {type(value).__name__}")
        if not api.state(value).get("__initialized__"):
            raise TypeError(f"{type(value).__name__}.__init__() must be called when overriding __init__")


# config, profile, timing cache ------------------------------------------------------------------
def set_flag(api, self, flag) -> None:
    api.state(self)["flags"].add(flag.name)


def get_flag(api, self, flag) -> bool:
    return flag.name in api.state(self)["flags"]


def set_memory_pool_limit(api, self, pool, size) -> None:
    api.state(self)["pools"][pool.name] = int(size)


def add_optimization_profile(api, self, profile) -> int:
    shapes = api.state(profile)["shapes"]
    if not shapes:
        return -1
    api.state(self)["profiles"].append(shapes)
    return len(api.state(self)["profiles"]) - 1


def set_shape(api, self, name, low, opt, high) -> None:
    api.state(self)["shapes"][name] = [list(low), list(opt), list(high)]


def create_optimization_profile(api, self):
    return api.new("IOptimizationProfile", shapes={})


def create_timing_cache(api, self, data):
    data = bytes(data)
    entries = int(data[len(CACHE_MAGIC) :] or 0) if data.startswith(CACHE_MAGIC) else 0
    if data and not data.startswith(CACHE_MAGIC):
        _log(api, "timing cache: not a serialized timing cache; starting empty")
    return api.new("ITimingCache", entries=entries)


def set_timing_cache(api, self, cache, ignore_mismatch) -> bool:
    api.state(self)["timing_cache"] = cache
    return True


def serialize_cache(api, self):
    return api.new("IHostMemory", CACHE_MAGIC + str(api.state(self)["entries"]).encode())


# parser and network ------------------------------------------------------------------------------
def parser_init(api, self, network, logger) -> None:
    api.state(self).update(network=network, errors=[])


def parse(api, self, model, path=None) -> bool:
    state, net = api.state(self), api.state(api.state(self)["network"])
    if not net["explicit_batch"]:
        state["errors"].append("the ONNX parser needs a network created with EXPLICIT_BATCH")
        return False
    try:
        net["spec"] = network_from_onnx(bytes(model))
    except Exception as exc:  # noqa: BLE001 - onnx's own parse and checker errors
        state["errors"].append(f"ModelImporter: {exc}")
        return False
    return True


def parse_from_file(api, self, model) -> bool:
    """What Polygraphy's NetworkFromOnnxPath calls (the path lets TensorRT find external weights)."""
    try:
        data = open(model, "rb").read()
    except OSError as exc:
        api.state(self)["errors"].append(f"ModelImporter: cannot open {model}: {exc}")
        return False
    return parse(api, self, data, model)


def _tensor(api, spec):
    return api.new("ITensor", name=spec.name, shape=tuple(spec.shape), is_shape_tensor=False,
                   dtype=api.classes["DataType"].__members__[spec.dtype])


LAYER_TYPES = {"Conv": "CONVOLUTION", "QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE",
               "Sigmoid": "ACTIVATION", "Relu": "ACTIVATION", "Add": "ELEMENTWISE", "Mul": "ELEMENTWISE",
               "Concat": "CONCATENATION", "Reshape": "SHUFFLE", "Transpose": "SHUFFLE", "Cast": "CAST",
               "ReduceMean": "REDUCE", "GlobalAveragePool": "POOLING", "MaxPool": "POOLING"}  # fmt: skip


def network_layer(api, self, index: int):
    """``network[i]`` / ``get_layer(i)``: one layer per ONNX node, typed as TensorRT's parser would make it."""
    nodes = _network_spec(api, self).nodes
    if not -len(nodes) <= index < len(nodes):
        raise IndexError(f"layer index {index} out of range for a network of {len(nodes)} layers")
    name, op = nodes[index]
    kinds = api.classes["LayerType"].__members__
    kind = kinds.get(LAYER_TYPES.get(op, "PLUGIN_V2")) or kinds.get("IDENTITY")
    return api.new("ILayer", name=name, type=kind, precision_is_set=False,
                   precision=api.classes["DataType"].__members__["FLOAT"])  # fmt: skip


def _network_spec(api, network):
    spec = api.state(network)["spec"]
    if spec is None:
        raise AssertionError("fake tensorrt: the network is empty, parse an ONNX first")
    return spec


# runtime and engine ------------------------------------------------------------------------------
def runtime_init(api, self, logger) -> None:
    api.state(self)["ctx"] = api.env.driver.runtime_context("Runtime()")


def deserialize(api, self, data):
    _on_gpu(api, self, "Runtime.deserialize_cuda_engine")
    data = bytes(data)
    if not data.startswith(ENGINE_MAGIC):
        _log(api, "deserialize: not a serialized engine")
        return None
    engine = json.loads(data[len(ENGINE_MAGIC) :])
    if engine["version"].split(".")[:3] != api.version.split(".")[:3]:
        _log(api, f"deserialize: the engine was built by TensorRT {engine['version']}, this is {api.version}")
        return None
    return _gpu_object(api, "ICudaEngine", "deserialize_cuda_engine", engine=engine)


def _io(api, engine) -> list[dict]:
    desc = api.state(engine)["engine"]
    return [dict(t, is_input=True) for t in desc["inputs"]] + [dict(t, is_input=False) for t in desc["outputs"]]


def _named(api, engine, name) -> dict:
    found = next((t for t in _io(api, engine) if t["name"] == name), None)
    if found is None:
        raise AssertionError(f"fake tensorrt: no tensor named '{name}' (real TensorRT logs an error and returns junk)")
    return found


def _profile(api, engine, tensor: dict) -> list[tuple]:
    shapes = api.state(engine)["engine"]["profile"].get(tensor["name"])
    return [tuple(s) for s in shapes] if shapes else [tuple(tensor["shape"])] * 3


def create_execution_context(api, self, *args):
    _on_gpu(api, self, "ICudaEngine.create_execution_context")
    return _gpu_object(api, "IExecutionContext", "create_execution_context", engine=self, shapes={}, addresses={})


# execution context ------------------------------------------------------------------------------
def set_input_shape(api, self, name, shape) -> bool:
    engine = api.state(self)["engine"]
    tensor = next((t for t in _io(api, engine) if t["name"] == name and t["is_input"]), None)
    if tensor is None:
        return False
    low, _, high = _profile(api, engine, tensor)
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
        _log(api, f"set_input_shape: {name} {shape} outside the profile {low}..{high}")
        return False
    api.state(self)["shapes"][name] = shape
    return True


def context_tensor_shape(api, self, name) -> tuple:
    state = api.state(self)
    tensor = _named(api, state["engine"], name)
    if tensor["is_input"]:
        return state["shapes"].get(name, tuple(tensor["shape"]))
    batch = next(iter(state["shapes"].values()), (-1,))[0]
    return tuple(batch if d == -1 else d for d in tensor["shape"])


def set_tensor_address(api, self, name, memory) -> bool:
    if not any(t["name"] == name for t in _io(api, api.state(self)["engine"])):
        return False
    api.state(self)["addresses"][name] = int(memory)
    return True


def _execute(api, self, stream_handle, addresses: dict[str, int], call: str) -> bool:
    _on_gpu(api, self, call)
    state, driver = api.state(self), api.env.driver
    tensors = _io(api, state["engine"])
    ctx = driver.current()
    if int(stream_handle):
        driver.stream_context(int(stream_handle), ctx, call)
    if any(t["name"] not in addresses for t in tensors):
        _log(api, f"{call}: no address for {[t['name'] for t in tensors if t['name'] not in addresses]}")
        return False
    shapes = {t["name"]: context_tensor_shape(api, self, t["name"]) for t in tensors}
    if any(-1 in shape for shape in shapes.values()):
        _log(api, f"{call}: input shapes not set: {shapes}")
        return False
    buffers = {}
    for t in tensors:
        nbytes = int(np.prod(shapes[t["name"]])) * np.dtype(TRT_TO_NUMPY[t["dtype"]]).itemsize
        buffers[t["name"]] = (driver.allocation(addresses[t["name"]], nbytes, ctx, call), nbytes, t)

    def work() -> None:
        arrays = {name: np.frombuffer(bytes(a.data[:n]), TRT_TO_NUMPY[t["dtype"]]).reshape(shapes[name])
                  for name, (a, n, t) in buffers.items() if t["is_input"]}  # fmt: skip
        for name, value in run_engine(api.state(state["engine"])["engine"], arrays).items():
            allocation, nbytes, _ = buffers[name]
            allocation.data[:nbytes] = value.tobytes()

    driver.enqueue(int(stream_handle), work)
    return True


def execute_async_v3(api, self, stream_handle) -> bool:
    return _execute(api, self, stream_handle, api.state(self)["addresses"], "execute_async_v3")


def execute_async_v2(api, self, bindings, stream_handle, input_consumed=None) -> bool:
    names = [t["name"] for t in _io(api, api.state(self)["engine"])]
    if len(bindings) != len(names):
        _log(api, f"execute_async_v2: {len(bindings)} bindings for {len(names)} tensors")
        return False
    return _execute(api, self, stream_handle, dict(zip(names, (int(b) for b in bindings))), "execute_async_v2")


def _binding(api, engine, index) -> dict:
    tensors = _io(api, engine)
    return tensors[index] if isinstance(index, int) else next(t for t in tensors if t["name"] == index)


def set_binding_shape(api, self, index, shape) -> bool:
    return set_input_shape(api, self, _binding(api, api.state(self)["engine"], index)["name"], shape)


# inspector --------------------------------------------------------------------------------------
def engine_information(api, self, format):
    if format.name != "JSON":
        return "\n".join(layer["name"] for layer in api.state(api.state(self)["engine"])["engine"]["layers"])
    context = api.state(self).get("execution_context")
    shapes = api.state(context)["shapes"] if context is not None else None
    return inspector_json(api.state(api.state(self)["engine"])["engine"], shapes)


def nptype(api, data_type):
    try:
        return TRT_TO_NUMPY[data_type.name]
    except KeyError:
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype: {data_type}") from None


def _engine_getters(api_table: dict) -> None:
    e = "ICudaEngine."
    api_table.update({
        e + "num_io_tensors": lambda api, self: len(_io(api, self)),
        e + "get_tensor_name": lambda api, self, i: _io(api, self)[i]["name"],
        e + "get_tensor_mode": lambda api, self, name: api.classes["TensorIOMode"].__members__[
            "INPUT" if _named(api, self, name)["is_input"] else "OUTPUT"],
        e + "get_tensor_shape": lambda api, self, name: tuple(_named(api, self, name)["shape"]),
        e + "get_tensor_dtype": lambda api, self, name: api.classes["DataType"].__members__[_named(api, self, name)["dtype"]],
        e + "get_tensor_profile_shape": lambda api, self, name, profile: _profile(api, self, _named(api, self, name)),
        e + "create_engine_inspector": lambda api, self: api.new("EngineInspector", engine=self),
        e + "num_bindings": lambda api, self: len(_io(api, self)),
        e + "get_binding_name": lambda api, self, i: _io(api, self)[i]["name"],
        e + "binding_is_input": lambda api, self, i: _binding(api, self, i)["is_input"],
        e + "get_binding_shape": lambda api, self, i: tuple(_binding(api, self, i)["shape"]),
        e + "get_binding_dtype": lambda api, self, i: api.classes["DataType"].__members__[_binding(api, self, i)["dtype"]],
        e + "get_profile_shape": lambda api, self, profile, b: _profile(api, self, _binding(api, self, b)),
        e + "__del__": _destroy,
    })  # fmt: skip


BEHAVIOURS: dict = {
    "Builder.__init__": builder_init,
    "Builder.create_network": create_network,
    "Builder.create_builder_config": create_builder_config,
    "Builder.create_optimization_profile": create_optimization_profile,
    "Builder.build_serialized_network": build_serialized_network,
    "Builder.num_DLA_cores": lambda api, self: api.env.dla_cores,
    "Builder.platform_has_fast_int8": lambda api, self: True,
    "Builder.__del__": _destroy,
    "Logger.__init__": lambda api, self, *args, **kwargs: None,
    "IBuilderConfig.set_flag": set_flag,
    "IBuilderConfig.get_flag": get_flag,
    "IBuilderConfig.set_memory_pool_limit": set_memory_pool_limit,
    "IBuilderConfig.add_optimization_profile": add_optimization_profile,
    "IBuilderConfig.create_timing_cache": create_timing_cache,
    "IBuilderConfig.set_timing_cache": set_timing_cache,
    "IBuilderConfig.num_optimization_profiles": lambda api, self: len(api.state(self)["profiles"]),
    "IBuilderConfig.get_timing_cache": lambda api, self: api.state(self).get("timing_cache"),
    "IBuilderConfig.int8_calibrator=": calibrator_setter,
    "IBuilderConfig.int8_calibrator": lambda api, self: None,
    "IOptimizationProfile.set_shape": set_shape,
    "ITimingCache.serialize": serialize_cache,
    "IHostMemory.nbytes": lambda api, self: len(self),
    "OnnxParser.__init__": parser_init,
    "OnnxParser.parse": parse,
    "OnnxParser.parse_from_file": parse_from_file,
    "OnnxParser.num_errors": lambda api, self: len(api.state(self)["errors"]),
    "OnnxParser.get_error": lambda api, self, i: Opaque("IParserError", api.state(self)["errors"][i]),
    "INetworkDefinition.num_inputs": lambda api, self: len(_network_spec(api, self).inputs),
    "INetworkDefinition.num_outputs": lambda api, self: len(_network_spec(api, self).outputs),
    "INetworkDefinition.num_layers": lambda api, self: len(_network_spec(api, self).nodes),
    "INetworkDefinition.get_layer": network_layer,
    "INetworkDefinition.__len__": lambda api, self: len(_network_spec(api, self).nodes),
    "INetworkDefinition.__getitem__": network_layer,
    "INetworkDefinition.get_input": lambda api, self, i: _tensor(api, _network_spec(api, self).inputs[i]),
    "INetworkDefinition.get_output": lambda api, self, i: _tensor(api, _network_spec(api, self).outputs[i]),
    "Runtime.__init__": runtime_init,
    "Runtime.deserialize_cuda_engine": deserialize,
    "Runtime.__del__": _destroy,
    "ICudaEngine.create_execution_context": create_execution_context,
    "IExecutionContext.set_input_shape": set_input_shape,
    "IExecutionContext.get_tensor_shape": context_tensor_shape,
    "IExecutionContext.set_tensor_address": set_tensor_address,
    "IExecutionContext.execute_async_v3": execute_async_v3,
    "IExecutionContext.execute_async_v2": execute_async_v2,
    "IExecutionContext.set_binding_shape": set_binding_shape,
    "IExecutionContext.get_binding_shape": lambda api, self, i: context_tensor_shape(
        api, self, _binding(api, api.state(self)["engine"], i)["name"]),
    "IExecutionContext.__del__": _destroy,
    "EngineInspector.get_engine_information": engine_information,
    "nptype": nptype,
    "volume": lambda api, shape: int(np.prod(shape)),
}  # fmt: skip
_engine_getters(BEHAVIOURS)
