"""Per-layer counters of OpenVINO, grouped: the grouping rules, averaging, and a real compiled model."""

from __future__ import annotations

import pytest

from benchmarks.layers import GROUPS, group_of, group_times, layer_profile, markdown
from deploy.runtime.openvino import LayerTime


@pytest.mark.parametrize(
    "node_type, kernel, group",
    [("Convolution", "brgconv_avx512_amx_i8", "conv int8"), ("Convolution", "jit_avx512_u8", "conv int8"),
     ("Convolution", "brgconv_avx512_1x1_f32", "conv float"), ("Convolution", "brgconv_avx512_amx_bf16", "conv float"),
     ("FakeQuantize", "jit_avx512_f32", "FakeQuantize"), ("Concat", "ref_i8", "Concat"),
     ("Swish", "jit_avx512_f32", "SiLU"), ("Reorder", "jit_uni_i8", "Reorder"),
     ("Maximum", "jit_avx512_f32", "Maximum no-op"), ("VariadicSplit", "ref_f32", "Split"),
     ("Softmax", "jit_avx512_f32", "other")],
)  # fmt: skip
def test_each_node_falls_in_its_group(node_type, kernel, group):
    assert group_of(LayerTime("n", node_type, kernel, 1.0)) == group


def test_group_times_average_over_inferences_and_count_nodes():
    first = [LayerTime("a", "Convolution", "x_i8", 2.0), LayerTime("b", "Concat", "ref_f32", 1.0)]
    second = [LayerTime("a", "Convolution", "x_i8", 4.0), LayerTime("b", "Concat", "ref_f32", 3.0)]
    out = group_times([first, second])
    assert out["conv int8"] == {"ms": pytest.approx(3.0), "nodes": 1}
    assert out["Concat"] == {"ms": pytest.approx(2.0), "nodes": 1} and out["other"]["nodes"] == 0
    assert set(out) == set(GROUPS)


def test_profile_of_a_compiled_int8_model(tiny_pair):
    pytest.importorskip("openvino")
    from deploy.cpu import has_vnni

    _, int8 = tiny_pair
    remedy = "none" if has_vnni() else "weights7"  # INT8 kernels on every CPU: as it is with VNNI, else 7-bit weights
    profile = layer_profile(str(int8), threads=1, runs=3, warmup=1, int8_remedy=remedy)
    assert (
        profile["groups"]["conv int8"]["nodes"] >= 1
        and profile["convs"].get("i8", 0) + profile["convs"].get("u8", 0) == 2
    )
    assert profile["total_ms"] == pytest.approx(sum(g["ms"] for g in profile["groups"].values()))
    table = markdown({"int8": profile, "again": profile})
    assert table[1].count("---") == table[0].count("|") - 1 == 3
    assert any(line.startswith("| convs by precision |") for line in table)
    assert profile["remedy"] == remedy and f"| INT8 self-check remedy | {remedy} | {remedy} |" in table
    assert table[-1] == profile["int8_note"] and "self-check" in table[-1]
    assert sum(profile["conv_kernels"].values()) == 2 and all(
        k.lower().endswith(("i8", "u8")) for k in profile["conv_kernels"]
    )
    assert (
        next(line for line in table if line.startswith("| convs by kernel |"))
        == "| convs by kernel | "
        + " | ".join([", ".join(f"{k} {v}" for k, v in sorted(profile["conv_kernels"].items()))] * 2)
        + " |"
    )
