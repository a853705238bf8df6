"""The accuracy part of the QAT report: FP32, PTQ INT8 and QAT INT8 through ONNX Runtime on the split
nothing was selected on, each difference with a paired bootstrap interval.

``best.pt`` is the epoch with the best val mAP, so its val figures are optimistic. With a ``test:``
split in data.yaml every model is scored on test; without one, on val, and the report says so.

Example:
    >>> accuracy = accuracy_report({"FP32": fp32, "PTQ INT8": ptq, "QAT INT8": qat}, "data.yaml")
    >>> print(accuracy.markdown())
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from base.dataset import Split, load_data_yaml, load_split
from deploy.bootstrap import Difference, Resamples
from deploy.evaluate import EvalResult, evaluate
from deploy.runtime.onnxruntime import OnnxRuntimeRunner

SELECTED_ON = "val"
"""The split the trainer picks best.pt on."""
PTQ_TOLERANCE = 0.003
"""PTQ within this much mAP50-95 (0.3 points) below FP32 leaves QAT nothing worth recovering."""
PAIRS = (("PTQ INT8", "FP32"), ("QAT INT8", "FP32"), ("QAT INT8", "PTQ INT8"))
"""The differences (a minus b) the report gives."""
METRICS = {"map50_95": "mAP50-95", "ap_small": "AP small"}
"""Metrics with bootstrap intervals (those ``deploy.bootstrap`` computes from the match tables), to their heading."""


def report_split(data: str | Path) -> Split:
    """The split every model is scored on: ``test`` when data.yaml has one, else ``val``."""
    spec = load_data_yaml(data)
    return load_split(spec, "test" if "test" in spec.splits else "val")


def evaluate_onnx(paths: dict[str, Path], split: Split) -> dict[str, EvalResult]:
    """mAP of each ONNX through ONNX Runtime (the reference for Q/DQ arithmetic) on ``split``."""
    out = {}
    for name, path in paths.items():
        with OnnxRuntimeRunner(path) as runner:
            out[name] = evaluate(runner, split)
    return out


def differences(
    results: dict[str, EvalResult], resamples: int = 1000, seed: int = 0,
    pairs: Iterable[tuple[str, str]] = PAIRS, means: dict[str, list[str]] | None = None,
) -> dict[str, dict[str, Difference]]:  # fmt: skip
    """Metric -> ``"a - b"`` -> the paired bootstrap ``Difference`` of each pair in ``pairs``, on the
    images the results were scored on (the same resamples for every model). A name of ``means`` is the
    mean of its members (``Resamples.add_mean``: one recipe over seeds) and may be either side of a
    pair. AP small is left out when no model has a small box to score."""
    pairs = list(pairs)
    images = next(iter(results.values())).images
    out = {}
    for metric in METRICS:
        if all(getattr(r, metric) is None for r in results.values()):
            continue
        boot = Resamples(images, metric, resamples, seed=seed)
        for name, result in results.items():
            boot.add(name, result.matches)
        for name, members in (means or {}).items():
            boot.add_mean(name, members)
        out[metric] = {f"{a} - {b}": boot.difference(a, b) for a, b in pairs}
    return out


def table(results: dict[str, EvalResult]) -> str:
    """Markdown table: mAP50-95, mAP50, small / medium / large AP and per-class AP50-95 of each model."""
    names = list(next(iter(results.values())).per_class)
    head = "| model | mAP50-95 | mAP50 | AP small | AP medium | AP large | " + " | ".join(names) + " |"
    rows = [head, "|" + "---|" * (6 + len(names))]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    for model, r in results.items():
        cells = [r.map50_95, r.map50, r.ap_small, r.ap_medium, r.ap_large] + [r.per_class[n] for n in names]
        rows.append(f"| {model} | " + " | ".join(map(fmt, cells)) + " |")
    return "\n".join(rows)


@dataclass
class AccuracyReport:
    """Every model's metrics on one split, and the differences between them.

    Attributes:
        split: The split scored (``test``, else ``val``).
        results: Model name (``FP32``, ``PTQ INT8``, ``QAT INT8``) to its metrics.
        differences: Metric to ``"a - b"`` to its paired bootstrap interval.
    """

    split: str
    results: dict[str, EvalResult]
    differences: dict[str, dict[str, Difference]]

    @property
    def optimistic(self) -> bool:
        """Scored on the split best.pt was selected on."""
        return self.split == SELECTED_ON

    @property
    def ptq_gap(self) -> Difference:
        """PTQ INT8 minus FP32, mAP50-95."""
        return self.differences["map50_95"]["PTQ INT8 - FP32"]

    @property
    def ptq_within(self) -> bool:
        """PTQ INT8 is at most ``PTQ_TOLERANCE`` below FP32 (or above it)."""
        return self.ptq_gap.delta >= -PTQ_TOLERANCE

    def to_dict(self) -> dict:
        """The report.json keys: ``evaluation``, ``ptq_within_fp32``, ``differences``."""
        images = next(iter(self.results.values())).images
        return {
            "evaluation": {"split": self.split, "images": images, "selected_on": SELECTED_ON,
                           "optimistic": self.optimistic},
            "ptq_within_fp32": {"tolerance": PTQ_TOLERANCE, "within": self.ptq_within,
                                "difference": self.ptq_gap.to_dict()},
            "differences": {m: {k: d.to_dict() for k, d in pairs.items()} for m, pairs in self.differences.items()},
        }  # fmt: skip

    def markdown(self) -> str:
        """report.md: where the figures come from, the table, the verdicts and every difference."""
        lines = [self._where(), "", table(self.results), "", self._ptq(), self._qat(), ""]
        lines += ["| difference | " + " | ".join(METRICS[m] for m in self.differences) + " |",
                  "|---|" + "---|" * len(self.differences)]  # fmt: skip
        for pair in self.differences["map50_95"]:
            lines.append(f"| {pair} | " + " | ".join(d[pair].describe() for d in self.differences.values()) + " |")
        d = self.ptq_gap
        lines += [
            "",
            f"Paired bootstrap over the {d.images} {self.split} images ({d.resamples} resamples, "
            f"{d.confidence:.0%} interval): a difference is real only when its interval excludes 0.",
        ]
        return "\n".join(lines)

    def _where(self) -> str:
        images = next(iter(self.results.values())).images
        if not self.optimistic:
            return (f"Scored on the {self.split} split ({images} images); best.pt was selected on {SELECTED_ON}, "
                    "so no model was selected on these images.")  # fmt: skip
        return (f"Scored on {self.split} ({images} images), the split best.pt was selected on: these figures are "
                "optimistic for the selected checkpoint. Add a test split (toolchain split-data) to score on "
                "images nothing was selected on.")  # fmt: skip

    def _ptq(self) -> str:
        d = self.ptq_gap
        if self.ptq_within:
            return (f"PTQ INT8 was already within {PTQ_TOLERANCE * 100:.1f} points of FP32 (mAP50-95 "
                    f"{d.describe()}): QAT was not needed for accuracy.")  # fmt: skip
        return (f"PTQ INT8 was {-d.delta * 100:.2f} points below FP32 (mAP50-95 {d.describe()}), more than "
                f"{PTQ_TOLERANCE * 100:.1f}: QAT had accuracy to recover.")  # fmt: skip

    def _qat(self) -> str:
        d = self.differences["map50_95"]["QAT INT8 - PTQ INT8"]
        verdict = "did not beat" if not d.real else "beat" if d.delta > 0 else "fell short of"
        return f"QAT INT8 {verdict} PTQ INT8 on {self.split} (mAP50-95 {d.describe()})."


def accuracy_report(paths: dict[str, Path], data: str | Path, resamples: int = 1000) -> AccuracyReport:
    """Score the ONNX files ``paths`` (keys ``FP32``, ``PTQ INT8``, ``QAT INT8``) on ``report_split(data)``."""
    split = report_split(data)
    results = evaluate_onnx(paths, split)
    return AccuracyReport(split.name, results, differences(results, resamples))
