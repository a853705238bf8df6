"""Every toolchain command run once on the tiny fixtures, through the real command line, with each
config field read after construction recorded (``FieldReads``): the end-to-end tests assert on the
outputs, the field walk (``test_field_walk.py``) asserts that every field was read."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shutil
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toolchain.config.fields import hints, shape


def config_classes(cls: type) -> set[type]:
    """``cls`` and every config dataclass below it (sections, and items of lists like overrides)."""
    found = {cls}
    for hint in hints(cls).values():
        s = shape(hint)
        nested = [s.base] + [a for a in typing.get_args(s.base) if isinstance(a, type)]
        for t in nested:
            if isinstance(t, type) and dataclasses.is_dataclass(t) and t not in found:
                found |= config_classes(t)
    return found


_ABSENT = object()


class FieldReads:
    """Records the (config class, field) pairs read after construction while inside the block.

    Reads made while an instance is constructed (its own checks in ``__post_init__``) do not count,
    nor do the reads of its generated ``__repr__``, ``__eq__`` and ``__hash__`` (logging, comparing or
    caching a config uses no setting), nor reads through ``__dict__`` (``to_dict``, the written
    records): only code using a setting counts.
    """

    NOT_USES = ("__init__", "__repr__", "__eq__", "__hash__")

    def __init__(self, classes: set[type]) -> None:
        self.classes, self.reads, self._inside = classes, set(), 0
        self._saved: dict[type, dict[str, object]] = {}

    def __enter__(self) -> set[tuple[type, str]]:
        for cls in self.classes:
            self._saved[cls] = {n: cls.__dict__.get(n, _ABSENT) for n in ("__getattribute__", *self.NOT_USES)}
            names = {f.name for f in dataclasses.fields(cls)}
            cls.__getattribute__ = self._getter(cls, names)
            for name in self.NOT_USES:
                method = getattr(cls, name)
                if method is not None:  # __hash__ is None on a mutable dataclass
                    setattr(cls, name, self._not_a_use(method))
        return self.reads

    def __exit__(self, *exc) -> None:
        for cls, own in self._saved.items():
            for name, method in own.items():
                if method is _ABSENT:
                    delattr(cls, name)
                else:
                    setattr(cls, name, method)

    def _getter(self, cls: type, names: set[str]):
        def getattribute(obj, name):
            if name in names and not self._inside and type(obj) is cls:
                self.reads.add((cls, name))
            return object.__getattribute__(obj, name)

        return getattribute

    def _not_a_use(self, method):
        def wrapped(obj, *args, **kwargs):
            self._inside += 1
            try:
                return method(obj, *args, **kwargs)
            finally:
                self._inside -= 1

        return wrapped


@dataclass
class CommandRun:
    """One command line run: its exit code, output, folder and the config fields it read."""

    argv: list[str]
    code: int
    out: str
    err: str
    folder: Path
    reads: set = field(default_factory=set)


def run_cli(argv: list[str], folder: Path, commands: dict | None = None) -> CommandRun:
    """``toolchain <argv>`` in this process, recording the fields read by the command's configs.

    ``commands`` replaces the registry (a test adds a field to a config that nothing reads).
    """
    from toolchain import cli
    from toolchain.commands import COMMANDS

    registry = commands or COMMANDS
    command = registry.get(argv[0])
    classes = config_classes(command.config) if command else set()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if commands is not None:
            stack.enter_context(pytest.MonkeyPatch.context()).setattr(cli, "COMMANDS", commands)
        reads = stack.enter_context(FieldReads(classes))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        code = cli.main([str(a) for a in argv])
    return CommandRun([str(a) for a in argv], code, out.getvalue(), err.getvalue(), folder, set(reads))


QUANT_YAML = "overrides:\n  - pattern: 'model\\.0\\.conv'\n    input: {calibrator: moving_average_max}\n"


@pytest.fixture(scope="session")
def quant_yaml(tmp_path_factory) -> Path:
    """A quant config with an override (the first conv's input by moving average)."""
    path = tmp_path_factory.mktemp("quant") / "quant.yaml"
    path.write_text(QUANT_YAML)
    return path


@pytest.fixture(scope="session")
def data_run(tmp_path_factory) -> CommandRun:
    folder = tmp_path_factory.mktemp("data_run")
    return run_cli(["data", "--out", folder / "syn", "--train", 2, "--val", 2, "--imgsz", 64, "--seed", 1,
                    "--min-size", 8, "--max-size", 24, "--workers", 1, "--synthetic.jpeg-quality", 80,
                    "--force"], folder)  # fmt: skip


@pytest.fixture(scope="session")
def check_data_run(tmp_path_factory, tiny_dataset) -> CommandRun:
    folder = tmp_path_factory.mktemp("check_data_run")
    return run_cli(["check-data", "--data", tiny_dataset, "--split", "val", "--strict"], folder)


@pytest.fixture(scope="session")
def split_data_run(tmp_path_factory, tiny_dataset) -> CommandRun:
    folder = tmp_path_factory.mktemp("split_data_run")
    return run_cli(["split-data", "--data", tiny_dataset, "--out", folder / "data.yaml",
                    "--test-fraction", 0.5, "--seed", 1], folder)  # fmt: skip


@pytest.fixture(scope="session")
def tile_data_run(tmp_path_factory, tiny_dataset) -> CommandRun:
    folder = tmp_path_factory.mktemp("tile_data_run")
    return run_cli(["tile-data", "--data", tiny_dataset, "--out", folder / "tiles", "--k", 2, "--imgsz", 64,
                    "--train", 3, "--val", 2, "--test", 2, "--seed", 1, "--tiles.val-fraction", 0.2,
                    "--tiles.jpeg-quality", 80, "--force"], folder)  # fmt: skip


@pytest.fixture(scope="session")
def analyze_run(tmp_path_factory, tiny_checkpoint, tiny_dataset, quant_yaml) -> CommandRun:
    folder = tmp_path_factory.mktemp("analyze_run")
    return run_cli(["analyze", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--out", folder, "--images", 2,
                    "--batch", 2, "--calib-images", 4, "--worst", 3, "--device", "cpu", "--opset", 17,
                    "--quant-config", quant_yaml], folder)  # fmt: skip


@pytest.fixture(scope="session")
def export_run(tmp_path_factory, tiny_checkpoint) -> CommandRun:
    folder = tmp_path_factory.mktemp("export_run")
    return run_cli(["export", "--weights", tiny_checkpoint, "--out", folder / "m.onnx", "--opset", 17], folder)


@pytest.fixture(scope="session")
def eval_runs(tmp_path_factory, tiny_checkpoint, tiny_dataset, export_run) -> list[CommandRun]:
    """eval of the .pt (PyTorch, every postprocess setting) and of the exported ONNX on OpenVINO."""
    folder = tmp_path_factory.mktemp("eval_runs")
    pt = run_cli(["eval", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--imgsz", 64, "--conf", 0.01,
                  "--iou", 0.6, "--max-det", 100, "--postprocess.classes", "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]",
                  "--device", "cpu", "--json", folder / "pt.json"], folder)  # fmt: skip
    onnx = run_cli(["eval", "--weights", export_run.folder / "m.onnx", "--data", tiny_dataset, "--backend", "openvino",
                    "--precision", "f32", "--threads", 1, "--batch", 2, "--json", folder / "onnx.json"], folder)  # fmt: skip
    return [pt, onnx]


@pytest.fixture(scope="session")
def ptq_run(tmp_path_factory, tiny_checkpoint, tiny_dataset, quant_yaml) -> CommandRun:
    folder = tmp_path_factory.mktemp("ptq_run")
    return run_cli(["ptq", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--num-images", 8, "--batch", 4,
                    "--out", folder / "tiny.int8.onnx", "--fp32", "--quant-config", quant_yaml,
                    "--quant.preset", "sensitive", "--quant.sensitive-keep", 1], folder)  # fmt: skip


@pytest.fixture(scope="session")
def parity_run(ptq_run, tiny_dataset) -> CommandRun:
    return run_cli(["parity", "--model", ptq_run.folder / "tiny.int8.pt", "--onnx", ptq_run.folder / "tiny.int8.onnx",
                    "--data", tiny_dataset, "--images", 2, "--max-map-gap", 0.01], ptq_run.folder)  # fmt: skip


@pytest.fixture(scope="session")
def sensitivity_run(tmp_path_factory, tiny_checkpoint, tiny_dataset) -> CommandRun:
    folder = tmp_path_factory.mktemp("sensitivity_run")
    return run_cli(["sensitivity", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--val-images", 2,
                    "--calib-images", 8, "--keep-float", 1, "--out", folder], folder)  # fmt: skip


@pytest.fixture(scope="session")
def baseline_run(tmp_path_factory, tiny_dataset) -> CommandRun:
    folder = tmp_path_factory.mktemp("baseline_run")
    return run_cli(["baseline", "--data", tiny_dataset, "--imgsz", 64, "--epochs", 1, "--batch", 8, "--workers", 0,
                    "--project", folder, "--name", "b", "--optimizer", "AdamW", "--lr0", 0.002, "--warmup-epochs", 0,
                    "--close-mosaic", 0, "--threads", 2, "--overrides", "{mosaic: 0.0}"], folder)  # fmt: skip


QAT_ARGS = ["--epochs", 1, "--batch", 8, "--workers", 0, "--val-images", 4, "--calib-images", 8, "--threads", 2,
            "--loss", "{distill: 0.5, distill_features: true, quant_penalty: 0.1, focal_gamma: 1.5}",
            "--schedule", "{name: qat, warmup_epochs: 1}", "--freeze-quant-epoch", 0,
            "--progressive", "{0: 'model\\.'}", "--patience", 3, "--quant.input.learn-amax", "--dynamic-batch"]  # fmt: skip


@pytest.fixture(scope="session")
def qat_run(tmp_path_factory, tiny_checkpoint, tiny_dataset, quant_yaml) -> CommandRun:
    """One QAT epoch with distillation, penalty, focal loss, the qat schedule, progressive stages,
    LSQ ranges and a quant override: every QAT setting in use."""
    folder = tmp_path_factory.mktemp("qat_run")
    return run_cli(["qat", "--weights", tiny_checkpoint, "--data", tiny_dataset, *QAT_ARGS, "--teacher", tiny_checkpoint,
                    "--quant-config", quant_yaml, "--project", folder, "--name", "run"], folder)  # fmt: skip


@pytest.fixture()
def copy_of(tmp_path):
    """A copy of a run folder, to change without touching the session's."""

    def copy(folder: Path) -> Path:
        return Path(shutil.copytree(folder, tmp_path / folder.name))

    return copy


@pytest.fixture()
def runs_nothing(monkeypatch) -> list:
    """Every command's work replaced by recording the config it would have run with."""
    from toolchain import cli
    from toolchain.commands import COMMANDS

    calls: list = []
    patched = {k: dataclasses.replace(c, run=calls.append) for k, c in COMMANDS.items()}
    monkeypatch.setattr(cli, "COMMANDS", patched)
    return calls


@pytest.fixture(scope="session")
def cli_tools():
    """``run_cli``, ``FieldReads`` and ``config_classes`` for tests (test modules cannot import each other)."""
    return run_cli, FieldReads, config_classes
