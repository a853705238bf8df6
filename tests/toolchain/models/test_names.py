from __future__ import annotations

import pytest

from base.errors import ToolchainError
from toolchain.models.names import check_classes, class_names
from toolchain.models.yolo import build_model


def test_class_names_in_class_id_order():
    model = build_model("yolov8n.yaml", ["b", "a"])
    model.names = {1: "a", 0: "b"}
    assert class_names(model) == ["b", "a"]


def test_check_classes_names_both_files_and_lists(tiny_dataset):
    names = class_names(build_model("yolov8n.yaml", ["x"] * 10))
    with pytest.raises(ToolchainError, match=r"w\.pt: the model has 10 classes .*, but .*data\.yaml has 10 "):
        check_classes(names, tiny_dataset, "w.pt")
