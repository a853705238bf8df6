"""Output errors as Polygraphy reports them, and trtexec's GPU compute time."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.gpu_measure import _output_errors_numpy, output_errors, parse_trtexec

# trtexec's summary line (8.x and 10.x print it alike), as NVIDIA's documentation shows it
TRTEXEC = """[08/14/2024-10:00:00] [I] Throughput: 2143.2 qps
[08/14/2024-10:00:00] [I] GPU Compute Time: min = 0.452637 ms, max = 0.797852 ms, mean = 0.465542 ms, \
median = 0.463867 ms, percentile(90%) = 0.472168 ms, percentile(95%) = 0.475098 ms, percentile(99%) = 0.493896 ms
[08/14/2024-10:00:00] [I] Total GPU Compute Time: 2.99681 s"""


def test_output_errors_are_polygraphy_s_statistics():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(2, 14, 84)).astype(np.float32)
    ref[0, 0, :5] = 0  # Polygraphy raises zeros to 2.2e-16 before dividing
    ours = ref + rng.normal(scale=1e-3, size=ref.shape).astype(np.float32)
    pytest.importorskip("polygraphy")
    theirs, mine = output_errors(ours, ref), _output_errors_numpy(ours, ref)
    assert theirs["by"] == "polygraphy" and mine["by"] == "numpy"
    for key in ("max_abs", "max_rel", "mean_abs", "median_abs", "median_rel"):
        assert mine[key] == pytest.approx(theirs[key], rel=1e-6), key
    assert mine["max_rel"] > 1e9  # a zero in the reference: the relative error Polygraphy reports is huge too


def test_trtexec_summary_parsed():
    assert parse_trtexec(TRTEXEC) == {"min": 0.452637, "max": 0.797852, "mean": 0.465542, "median": 0.463867,
                                      "p90": 0.472168, "p95": 0.475098, "p99": 0.493896}  # fmt: skip
    with pytest.raises(RuntimeError, match="no 'GPU Compute Time' line"):
        parse_trtexec("[I] Throughput: 10 qps")
