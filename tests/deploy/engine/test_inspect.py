from __future__ import annotations

import json

from deploy.engine.inspect import layer_report


def test_counts_precisions_and_reformats():
    info = {
        "Layers": [
            {"Name": "conv0", "LayerType": "CaskConvolution",
             "Outputs": [{"Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}]},
            {"Name": "conv1", "LayerType": "CaskConvolution",
             "Outputs": [{"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
            {"Name": "Reformatting CopyNode for Input Tensor 0 to conv2", "LayerType": "Reformat",
             "Outputs": [{"Format/Datatype": "Row major linear FP32"}]},
            {"Name": "head.sigmoid", "LayerType": "PointWiseV2", "Outputs": [{"Format/Datatype": "Row major linear FP32"}]},
        ],
        "Bindings": ["images", "output0"],
    }  # fmt: skip
    report = layer_report(json.dumps(info))
    assert report.layers == 4 and len(report.reformats) == 1
    assert report.precisions == {"INT8": 1, "FP16": 1, "FP32": 1}
    assert report.summary() == "4 layers: FP16 1, FP32 1, INT8 1; 1 reformat layers"


def test_names_only_inspector_output():
    report = layer_report({"Layers": ["a", "b"]})
    assert report.layers == 2 and report.precisions == {"unknown": 2}
