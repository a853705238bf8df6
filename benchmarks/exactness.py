"""Is an OpenVINO variant of an INT8 model exact? Its outputs and its mAP beside ONNX Runtime's.

ONNX Runtime computes Q/DQ in float, as the fake-quant model does, so it is the reference. Two
checks on val images: the largest absolute difference of the raw head outputs (box coordinates in
pixels and class scores apart), and mAP50-95 on the same images with a paired bootstrap interval.

Example:
    >>> with OnnxRuntimeRunner("int8.onnx") as ort:
    ...     reference = Reference(ort, split)
    >>> reference.check(openvino_runner).exact
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from base.dataset import Split
from deploy.bootstrap import paired_bootstrap
from deploy.evaluate import EvalResult, evaluate
from deploy.preprocess import preprocess
from deploy.runtime.base import Runner


@dataclass
class Exactness:
    """One variant against ONNX Runtime on the same images.

    Attributes:
        map50_95: The variant's mAP50-95.
        reference_map50_95: ONNX Runtime's.
        difference: The paired bootstrap ``Difference.to_dict()`` of variant minus reference.
        max_abs_box: Largest absolute difference of the raw box outputs (pixels of the model input).
        max_abs_score: Largest absolute difference of the raw class scores.
        images: Val images scored; ``diff_images``: images whose raw outputs were compared.
        exact: |mAP difference| within the tolerance and its interval includes 0.
    """

    map50_95: float
    reference_map50_95: float
    difference: dict
    max_abs_box: float
    max_abs_score: float
    images: int
    diff_images: int
    exact: bool


def raw_outputs(runner: Runner, batch: np.ndarray) -> np.ndarray:
    """The first head output of each image, one at a time (batch 1, as a static model needs)."""
    return np.concatenate([runner.infer(batch[i : i + 1])[0] for i in range(len(batch))])


class Reference:
    """The reference runner's raw outputs and mAP on a split, computed once, checked against many variants."""

    def __init__(self, runner: Runner, split: Split, diff_images: int = 16, resamples: int = 1000) -> None:
        self.split, self.resamples = split, resamples
        size = runner.input_shape[2]
        paths = [r.path for r in split.images[:diff_images]]
        self.batch = preprocess([cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths], (size, size))[0]
        self.outputs = raw_outputs(runner, self.batch)
        self.result: EvalResult = evaluate(runner, split)

    def check(self, runner: Runner, tolerance: float = 0.002) -> Exactness:
        """``runner`` (the same model on another backend or with other options) against the reference."""
        diff = np.abs(raw_outputs(runner, self.batch) - self.outputs)
        result = evaluate(runner, self.split)
        d = paired_bootstrap(result.matches, self.result.matches, resamples=self.resamples)
        exact = abs(d.delta) <= tolerance and not d.real
        return Exactness(result.map50_95, self.result.map50_95, d.to_dict(), float(diff[:, :4].max()),
                         float(diff[:, 4:].max()), result.images, len(self.batch), exact)  # fmt: skip
