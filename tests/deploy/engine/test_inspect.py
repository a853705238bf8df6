"""The layer report reads the engine inspector's JSON of 8.x, 10.x and 11.x.

The samples follow NVIDIA's documentation: the developer guide's kDETAILED layer example (8.x:
``Format/Datatype`` text such as "Thirty-two wide channel vectorized row major Int8 format."), the
engine inspector section of the 10.x guide (tensors gain ``Location``; with dynamic shapes and no
execution context the format reads "N/A due to dynamic shapes"), and "Migrating IEngineInspector Usage
from TensorRT 10.x to 11.x" (docs.nvidia.com/deeplearning/tensorrt/11.0.0/api/migration/
tensorrt-10x-to-11x-IEngineInspector.html): ``Format`` and ``DataType`` apart, ``I/O Tensors``
objects instead of ``Bindings``.
"""

from __future__ import annotations

import json

import pytest

from deploy.engine.inspect import layer_report

CONV_8X = {
    "Name": "node_of_gpu_0/res4_0_branch2a_1 + node_of_gpu_0/res4_0_branch2a_bn_1 + node_of_gpu_0/res4_0_branch2a_bn_2",
    "LayerType": "CaskConvolution",
    "Inputs": [{"Name": "gpu_0/res3_3_branch2c_bn_3", "Dimensions": [16, 512, 28, 28],
                "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
    "Outputs": [{"Name": "gpu_0/res4_0_branch2a_bn_2", "Dimensions": [16, 256, 28, 28],
                 "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
    "ParameterType": "Convolution", "Kernel": [1, 1], "OutMaps": 256, "Groups": 1,
    "Weights": {"Type": "Int8", "Count": 131072}, "Bias": {"Type": "Float", "Count": 256},
    "TacticName": "sm80_xmma_fprop_implicit_gemm_interleaved_i8i8_i8i32_f32_nchw_vect_c_32kcrs_vect_c_32",
    "TacticValue": "0x11bde0e1d9f2f35d",
}  # fmt: skip
SAMPLE_8X = {"Layers": [
    {"Name": "Reformatting CopyNode for Input Tensor 0 to conv0", "LayerType": "Reformat",
     "Inputs": [{"Name": "images", "Dimensions": [1, 3, 640, 640], "Format/Datatype": "Row major linear FP32"}],
     "Outputs": [{"Name": "Reformatted Input Tensor 0 to conv0", "Dimensions": [1, 3, 640, 640],
                  "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}]},
    CONV_8X,
    {"Name": "head.dfl", "LayerType": "CaskConvolution",
     "Outputs": [{"Name": "dfl", "Dimensions": [1, 4, 8400], "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
    {"Name": "head.sigmoid", "LayerType": "PointWiseV2",
     "Outputs": [{"Name": "scores", "Dimensions": [1, 80, 8400], "Format/Datatype": "Row major linear FP32"}]},
], "Bindings": ["images", "output0"]}  # fmt: skip


def _with_location(layer: dict) -> dict:
    tensors = {k: [dict(t, Location="Device") for t in layer.get(k, [])] for k in ("Inputs", "Outputs")}
    return {**layer, **tensors}


SAMPLE_10X = {"Layers": [_with_location(layer) for layer in SAMPLE_8X["Layers"]], "Bindings": ["images", "output0"]}
SAMPLE_11X = {
    "Layers": [
        {"Name": CONV_8X["Name"], "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "gpu_0/res3_3_branch2c_bn_3", "Location": "Device", "Dimensions": [16, 512, 28, 28],
                     "Format": "Thirty-two wide channel vectorized row major format (kCHW32)", "DataType": "Int8"}],
         "Outputs": [{"Name": "gpu_0/res4_0_branch2a_bn_2", "Location": "Device", "Dimensions": [16, 256, 28, 28],
                      "Format": "Thirty-two wide channel vectorized row major format (kCHW32)", "DataType": "Int8"}]},
        {"Name": "head.dfl", "LayerType": "CaskConvolution",
         "Outputs": [{"Name": "dfl", "Location": "Device", "Dimensions": [1, 4, 8400],
                      "Format": "Channel major format where channel % 8 == 0 (kHWC8)", "DataType": "Half"}]},
        {"Name": "head.sigmoid", "LayerType": "PointWiseV2",
         "Outputs": [{"Name": "scores", "Location": "Device", "Dimensions": [1, 80, 8400],
                      "Format": "Row major linear FP32 format (kLINEAR)", "DataType": "Float"}]},
    ],
    "I/O Tensors": [
        {"Name": "input_0", "IOMode": "Input", "DataType": "Float", "Dimensions": [1, 3, 224, 224], "Location": "Device",
         "IsShapeInferenceIO": False, "ProfileInfo": [{"MinShape": [1, 3, 224, 224], "OptShape": [1, 3, 224, 224],
                                                       "MaxShape": [1, 3, 224, 224],
                                                       "Format": "Row major linear FP32 format (kLINEAR)"}]},
    ],
}  # fmt: skip


@pytest.mark.parametrize(("sample", "expected"), [
    (SAMPLE_8X, {"INT8": 1, "FP16": 1, "FP32": 1}), (SAMPLE_10X, {"INT8": 1, "FP16": 1, "FP32": 1}),
    (SAMPLE_11X, {"INT8": 1, "FP16": 1, "FP32": 1}),
], ids=["8.x", "10.x", "11.x"])  # fmt: skip
def test_precisions_and_reformats_of_each_format(sample, expected):
    report = layer_report(json.dumps(sample))
    assert report.precisions == expected
    assert len(report.reformats) == (0 if sample is SAMPLE_11X else 1)
    assert report.layers == len(sample["Layers"])


def test_an_11x_int8_layer_is_not_read_as_fp32():
    """The 11.x Format text no longer names the type; only DataType does."""
    layer = SAMPLE_11X["Layers"][0]
    assert "int8" not in layer["Outputs"][0]["Format"].lower()
    assert layer_report({"Layers": [layer]}).precisions == {"INT8": 1}


def test_dynamic_shapes_without_a_context_are_unknown_not_fp32():
    dynamic = {"Name": "conv", "LayerType": "CaskConvolution",
               "Outputs": [{"Name": "y", "Location": "Device", "Dimensions": [-1, 16, 80, 80],
                            "Format/Datatype": "N/A due to dynamic shapes"}]}  # fmt: skip
    assert layer_report({"Layers": [dynamic]}).precisions == {"unknown": 1}


def test_names_only_inspector_output():
    report = layer_report({"Layers": ["a", "b"]})
    assert report.layers == 2 and report.precisions == {"unknown": 2}
    assert report.summary() == "2 layers: unknown 2; 0 reformat layers"
