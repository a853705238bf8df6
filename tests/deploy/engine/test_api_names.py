"""Every TensorRT and pycuda name the code uses exists in the Python API of each supported version,
and names of only some versions are used only under their version guard.

TensorRT cannot be installed on our machines, so the API is kept here as lists drawn from NVIDIA's
documentation and Python bindings: the 8.x-to-10.x migration guide (removed and added Python APIs),
the 10.x Builder docs (EXPLICIT_BATCH kept but ignored in 10.x, STRONGLY_TYPED added), and the
pyCore bindings of 8.5 and 10.x. Guards: code that uses a name of 8.x only sits in a function whose
name ends with ``_trt8``; 10.x-only names in functions ending with ``_trt10``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FILES = sorted((REPO / "deploy" / "engine").glob("*.py")) + [REPO / "deploy" / "runtime" / "tensorrt.py"]
# In deploy/engine/cuda.py the runner's CUDA helper is ``self.gpu``; ``self.cuda`` is pycuda.driver and
# ``self.cudart`` cuda-python's runtime, so their names are checked like TensorRT's.

COMMON = {
    "trt": {"Logger", "Runtime", "Builder", "OnnxParser", "BuilderFlag", "MemoryPoolType", "ProfilingVerbosity",
            "LayerInformationFormat", "DeviceType", "TensorIOMode", "NetworkDefinitionCreationFlag",
            "IInt8EntropyCalibrator2", "nptype", "volume", "__version__"},
    "trt.Logger": {"WARNING", "ERROR", "INFO", "VERBOSE"},
    "trt.BuilderFlag": {"FP16", "INT8", "GPU_FALLBACK"},
    "trt.MemoryPoolType": {"WORKSPACE"},
    "trt.ProfilingVerbosity": {"DETAILED"},
    "trt.LayerInformationFormat": {"JSON"},
    "trt.DeviceType": {"DLA", "GPU"},
    "trt.TensorIOMode": {"INPUT", "OUTPUT"},
    "IBuilder": {"create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
                 "num_DLA_cores", "platform_has_fast_int8"},
    "INetworkDefinition": {"get_input", "num_inputs", "get_output", "num_outputs"},
    "ITensor": {"shape", "name", "dtype"},
    "IBuilderConfig": {"set_flag", "set_memory_pool_limit", "profiling_verbosity", "int8_calibrator",
                       "add_optimization_profile", "create_timing_cache", "set_timing_cache", "get_timing_cache",
                       "default_device_type", "DLA_core"},
    "ITimingCache": {"serialize"},
    "IOptimizationProfile": {"set_shape"},
    "OnnxParser": {"parse", "num_errors", "get_error"},
    "IRuntime": {"deserialize_cuda_engine"},
    "ICudaEngine": {"create_execution_context", "create_engine_inspector", "serialize", "num_io_tensors",
                    "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype",
                    "get_tensor_profile_shape"},
    "IExecutionContext": {"set_input_shape", "set_tensor_address", "execute_async_v3", "get_tensor_shape"},
    "IEngineInspector": {"get_engine_information"},
    "cuda": {"Device", "Stream", "mem_alloc", "memcpy_htod", "memcpy_htod_async", "memcpy_dtoh_async",
             "pagelocked_empty"},
    "Device": {"compute_capability", "name"},
    "Stream": {"synchronize", "handle"},
    "DeviceAllocation": {"free"},
    # cuda-python's runtime bindings (cuda.bindings.runtime / cuda.cudart), the same for every TensorRT
    "cudart": {"cudaMallocHost", "cudaFreeHost", "cudaMalloc", "cudaFree", "cudaStreamCreate", "cudaStreamDestroy",
               "cudaStreamSynchronize", "cudaMemcpyAsync", "cudaMemcpyKind", "cudaStreamBeginCapture",
               "cudaStreamEndCapture", "cudaStreamCaptureMode", "cudaGraphInstantiate", "cudaGraphLaunch",
               "cudaGraphDestroy", "cudaGraphExecDestroy", "cudaGetDeviceProperties", "cudaError_t"},
    "cudart.cudaError_t": {"cudaSuccess"},
    "cudart.cudaMemcpyKind": {"cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"},
    "cudart.cudaStreamCaptureMode": {"cudaStreamCaptureModeGlobal"},
}  # fmt: skip
# Present in 8.5 and 8.6 (deprecated there), removed in 10.0.
TRT8_ONLY = {
    "ICudaEngine": {"num_bindings", "get_binding_name", "get_binding_index", "binding_is_input", "get_binding_shape",
                    "get_binding_dtype", "get_profile_shape", "max_batch_size"},
    "IExecutionContext": {"set_binding_shape", "get_binding_shape", "execute_async_v2", "execute_async", "execute"},
    "IBuilderConfig": {"max_workspace_size", "min_timing_iterations"},
    "IBuilder": {"build_engine", "max_batch_size"},
}  # fmt: skip
# Added after 8.6 (STRONGLY_TYPED arrived in 9.x); EXPLICIT_BATCH stays in 10.x but is ignored there.
TRT10_ONLY = {"trt.NetworkDefinitionCreationFlag": {"STRONGLY_TYPED"}}
GUARDED_ANYWHERE = {"trt.NetworkDefinitionCreationFlag": {"EXPLICIT_BATCH"}}  # meaningful on 8.x only
VERSIONS = {
    "8.5": (COMMON, TRT8_ONLY, GUARDED_ANYWHERE),
    "8.6": (COMMON, TRT8_ONLY, GUARDED_ANYWHERE),
    "10.x": (COMMON, TRT10_ONLY, GUARDED_ANYWHERE),
}
VARIABLES = {
    "trt": "trt", "builder": "IBuilder", "network": "INetworkDefinition", "config": "IBuilderConfig",
    "parser": "OnnxParser", "profile": "IOptimizationProfile", "runtime": "IRuntime", "engine": "ICudaEngine",
    "context": "IExecutionContext", "inspector": "IEngineInspector", "timing_cache": "ITimingCache",
    "cuda": "cuda", "stream": "Stream", "_stream": "Stream", "device": "Device", "cudart": "cudart",
    "allocation": "DeviceAllocation",
}  # fmt: skip
RETURNS = {"get_input": "ITensor", "get_output": "ITensor", "Device": "Device", "Stream": "Stream"}


def _owner(node: ast.expr) -> str | None:
    """The API class of the object an attribute is read from, when the code names it by convention."""
    if isinstance(node, ast.Name):
        return VARIABLES.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return VARIABLES.get(node.attr)
    if isinstance(node, ast.Attribute):
        parent = _owner(node.value)
        if parent in ("trt", "cudart"):
            return f"{parent}.{node.attr}"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return RETURNS.get(node.func.attr)
    return None


def _uses(path: Path) -> list[tuple[str, str, str, int]]:
    """(owner class, attribute, enclosing function, line) of every API name used in a file."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Attribute):
            owner = _owner(node.value)
            if owner:
                found.append((owner, node.attr, function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def _all_uses() -> list[tuple[str, str, str, str, int]]:
    return [(p.name, *use) for p in FILES for use in _uses(p)]


def test_the_scan_sees_the_api():
    uses = {(o, a) for _, o, a, _, _ in _all_uses()}
    for expected in [("IBuilderConfig", "set_memory_pool_limit"), ("IExecutionContext", "execute_async_v3"),
                     ("IExecutionContext", "execute_async_v2"), ("trt.BuilderFlag", "INT8"), ("cuda", "mem_alloc"),
                     ("ICudaEngine", "num_bindings"), ("trt.NetworkDefinitionCreationFlag", "STRONGLY_TYPED"),
                     ("cudart", "cudaGraphLaunch"), ("cudart.cudaMemcpyKind", "cudaMemcpyHostToDevice"),
                     ("cuda", "memcpy_htod_async")]:  # fmt: skip
        assert expected in uses, expected


@pytest.mark.parametrize("version", list(VERSIONS))
def test_every_name_exists_in_each_version_where_it_can_run(version):
    tables = VERSIONS[version]
    known = lambda owner, attr: any(attr in t.get(owner, set()) for t in tables)  # noqa: E731
    skip_suffix = "_trt10" if version.startswith("8") else "_trt8"
    missing = [f"{f}:{line} {owner}.{attr} (in {fn})" for f, owner, attr, fn, line in _all_uses()
               if not fn.endswith(skip_suffix) and not known(owner, attr)]  # fmt: skip
    assert not missing, f"names not in the TensorRT {version} API: {missing}"


def test_version_specific_names_only_under_their_guard():
    wrong = []
    for f, owner, attr, fn, line in _all_uses():
        if attr in TRT8_ONLY.get(owner, set()) and not fn.endswith("_trt8"):
            wrong.append(f"{f}:{line} {owner}.{attr} is 8.x-only but used in {fn}")
        if attr in TRT10_ONLY.get(owner, set()) and not fn.endswith("_trt10"):
            wrong.append(f"{f}:{line} {owner}.{attr} is 10.x-only but used in {fn}")
    assert not wrong, wrong


def test_a_typo_a_removed_name_or_a_missing_guard_would_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def run(context, stream):\n    context.execute_async_v2([], stream.handle)\n"
                   "def build(config):\n    config.set_memory_pool_limt(1, 2)\n")  # fmt: skip
    uses = _uses(bad)
    unknown = [attr for owner, attr, _, _ in uses if not any(attr in t.get(owner, set()) for t in VERSIONS["10.x"])]
    assert unknown == ["execute_async_v2", "set_memory_pool_limt"]
    unguarded = [
        attr for owner, attr, fn, _ in uses if attr in TRT8_ONLY.get(owner, set()) and not fn.endswith("_trt8")
    ]
    assert unguarded == ["execute_async_v2"]
