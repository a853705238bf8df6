"""The fake TensorRT is as strict as the real bindings: the tests that rely on it rely on this."""

from __future__ import annotations

import pytest

from tests.fakes.env import fake_gpu
from tests.fakes.fake_tensorrt import FakeEnum
from tests.fakes.trt_api import dump_versions, load_dump, parse_signatures


@pytest.mark.parametrize("version", dump_versions())
def test_every_dumped_name_exists_and_nothing_else(version):
    with fake_gpu(version) as gpu:
        trt, dump = gpu.trt.module, load_dump(version)["module"]
        for name, entry in dump.items():
            assert hasattr(trt, name), name
            if entry["kind"] == "enum":
                assert set(getattr(trt, name).__members__) == set(entry["values"])
        with pytest.raises(AttributeError):
            trt.NotATensorRTName  # noqa: B018
        assert trt.__version__ == load_dump(version)["__version__"]


def test_names_removed_in_11_are_gone_and_calls_are_checked():
    with fake_gpu("11.4") as gpu:
        trt = gpu.trt.module
        assert not hasattr(trt.BuilderFlag, "INT8") and not hasattr(trt, "IInt8EntropyCalibrator2")
        builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
        config = builder.create_builder_config()
        assert type(config).__name__ == "IBuilderConfig" and type(builder.create_network(0)).__name__ == "INetworkDefinition"
        assert type(builder.create_network(flags=0)).__name__ == "INetworkDefinition"  # the real keyword
        with pytest.raises(AttributeError, match="int8_calibrator"):
            config.int8_calibrator = None
        with pytest.raises(TypeError, match="incompatible function arguments"):
            builder.create_network(0, 1)
        with pytest.raises(TypeError, match="no keyword argument 'flag'"):
            builder.create_network(flag=0)
        with pytest.raises(TypeError, match="expected BuilderFlag, got MemoryPoolType"):
            config.set_flag(trt.MemoryPoolType.WORKSPACE)
        with pytest.raises(TypeError, match="No constructor defined"):
            trt.ICudaEngine()


def test_removed_and_added_names_per_version():
    with fake_gpu("8.6") as gpu:
        trt = gpu.trt.module
        assert hasattr(trt.ICudaEngine, "num_bindings") and not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    with fake_gpu("10.0") as gpu:
        trt = gpu.trt.module
        assert not hasattr(trt.ICudaEngine, "num_bindings") and hasattr(trt.BuilderFlag, "INT8")
        assert isinstance(trt.BuilderFlag.INT8, FakeEnum) and trt.BuilderFlag.INT8 != trt.BuilderFlag.FP16


def test_a_python_subclass_gets_its_own_attributes_and_must_call_the_base_init():
    with fake_gpu("10.3") as gpu:
        trt = gpu.trt.module

        class Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self, call_base: bool) -> None:
                if call_base:
                    super().__init__()
                self.batches = 0

        config = trt.Builder(trt.Logger()).create_builder_config()
        config.int8_calibrator = Calibrator(True)
        with pytest.raises(TypeError, match="must be called when overriding __init__"):
            config.int8_calibrator = Calibrator(False)


def test_signature_parsing_of_pybind11_lines():
    (logger,) = parse_signatures("__init__", "__init__(self: tensorrt_bindings.tensorrt.Logger, min_severity: "
                                 "tensorrt_bindings.tensorrt.ILogger.Severity = <Severity.WARNING: 2>) -> None")  # fmt: skip
    assert [(p.name, p.has_default) for p in logger.params] == [("min_severity", True)]
    overloads = parse_signatures("get_profile_shape", load_dump("8.6.1")["module"]["ICudaEngine"]["members"]
                                 ["get_profile_shape"])  # fmt: skip
    assert len(overloads) == 2 and overloads[1].params[1].type == "str"
    (unnamed,) = parse_signatures("f", "f(self: X, arg0: int) -> None")
    assert unnamed.params[0].positional_only
