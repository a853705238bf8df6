from __future__ import annotations

import pytest
import yaml

from base.errors import ToolchainError
from toolchain.cli import main
from toolchain.config.files import SCHEMA_VERSION, record
from toolchain.models.names import class_names
from toolchain.models.yolo import load_model, trained_imgsz
from toolchain.training.baseline import BaselineConfig, _train_args, train_baseline


def test_one_epoch_writes_best_and_resolved_config(baseline_run):
    assert baseline_run.code == 0, baseline_run.err
    best = baseline_run.folder / "b" / "weights" / "best.pt"
    assert baseline_run.out.strip().endswith(str(best))
    model = load_model(best)
    assert class_names(model)[0] == "no_entry" and trained_imgsz(model) == 64
    saved = yaml.safe_load((baseline_run.folder / "b" / "baseline.yaml").read_text())
    assert saved["version"] == SCHEMA_VERSION and saved["imgsz"] == 64 and saved["epochs"] == 1
    assert saved["optimizer"] == "AdamW" and saved["threads"] == 2 and saved["overrides"] == {"mosaic": 0.0}


def test_config_of_the_written_file_reproduces_the_run(baseline_run, runs_nothing):
    written = baseline_run.folder / "b" / "baseline.yaml"
    assert main(["baseline", "--config", str(written)]) == 0
    assert record(runs_nothing[0]) == yaml.safe_load(written.read_text())


def test_resume_without_a_run_is_a_clear_error(tmp_path, tiny_dataset):
    cfg = BaselineConfig(data=str(tiny_dataset), project=str(tmp_path), name="none", resume=True)
    with pytest.raises(ToolchainError, match="nothing to resume"):
        train_baseline(cfg)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"imgsz": 100}, "imgsz: expected an integer >= 32, a multiple of 32, got 100"),
        ({"epochs": 0}, "epochs: expected an integer >= 1, got 0"),
        ({"model": "missing.pt"}, "weights not found"),
        ({"optimizer": "Adagrad"}, "optimizer: expected one of"),
        ({"cache": "gpu"}, "cache: expected one of"),
        ({"hours": -1}, "hours: expected a number >= 0"),
    ],
)
def test_bad_config(kwargs, match, tiny_dataset):
    with pytest.raises(ToolchainError, match=match):
        BaselineConfig(data=str(tiny_dataset), **kwargs)


def test_hours_cap_the_training_through_ultralytics_time(tiny_dataset):
    assert "time" not in _train_args(BaselineConfig(data=str(tiny_dataset)))
    assert _train_args(BaselineConfig(data=str(tiny_dataset), hours=1.5))["time"] == 1.5
    assert _train_args(BaselineConfig(data=str(tiny_dataset), hours=1.5, overrides={"time": 2.0}))["time"] == 2.0
