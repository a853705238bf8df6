from __future__ import annotations

import pytest
import yaml

from deploy.errors import ToolchainError
from toolchain.models.yolo import class_names, load_model
from toolchain.training.baseline import BaselineConfig, train_baseline


def test_one_epoch_writes_best_and_resolved_config(tmp_path, tiny_dataset):
    cfg = BaselineConfig(
        data=str(tiny_dataset), imgsz=64, epochs=1, batch=8, workers=0, project=str(tmp_path), name="b",
        optimizer="AdamW", lr0=0.002, warmup_epochs=0, close_mosaic=0,
    )  # fmt: skip
    best = train_baseline(cfg)
    assert best == tmp_path / "b" / "weights" / "best.pt"
    assert class_names(load_model(best))[0] == "no_entry"
    saved = yaml.safe_load((tmp_path / "b" / "baseline.yaml").read_text())
    assert saved["imgsz"] == 64 and saved["epochs"] == 1


def test_resume_without_a_run_is_a_clear_error(tmp_path, tiny_dataset):
    cfg = BaselineConfig(data=str(tiny_dataset), project=str(tmp_path), name="none", resume=True)
    with pytest.raises(ToolchainError, match="nothing to resume"):
        train_baseline(cfg)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"imgsz": 100}, "multiple of 32"), ({"epochs": 0}, "at least 1"), ({"model": "missing.pt"}, "weights not found")],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ToolchainError, match=match):
        BaselineConfig(**kwargs)
