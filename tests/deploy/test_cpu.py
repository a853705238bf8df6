"""The CPU's instruction sets, the oneDNN cap, and what follows for INT8 and bf16."""

from __future__ import annotations

import pytest

from deploy import cpu

ZEN4 = frozenset("sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512_vnni avx512_bf16".split())
AVX2_ONLY = frozenset("sse4_2 avx avx2 fma f16c".split())
AMX = ZEN4 | {"amx_tile", "amx_int8", "amx_bf16"}


@pytest.mark.parametrize(("flags", "native", "count"), [
    (AVX2_ONLY, "AVX2", 1), (ZEN4, "AVX512_CORE_BF16", 4), (AMX, "AVX512_CORE_AMX", 5), (frozenset(), None, 0),
])  # fmt: skip
def test_supported_isas_follow_the_flags(flags, native, count):
    assert cpu.native_isa(flags) == native and len(cpu.supported_isas(flags)) == count


@pytest.mark.parametrize(("flags", "cap", "isa", "vnni", "precisions"), [
    (ZEN4, None, "AVX512_CORE_BF16", True, ("f32", "bf16")),
    (ZEN4, "AVX2", "AVX2", False, ("f32",)),
    (ZEN4, "avx512_core", "AVX512_CORE", False, ("f32",)),
    (ZEN4, "AVX512_CORE_VNNI", "AVX512_CORE_VNNI", True, ("f32",)),
    (AVX2_ONLY, "AVX512_CORE_AMX", "AVX2", False, ("f32",)),  # a cap above the CPU changes nothing
    (AMX, None, "AVX512_CORE_AMX", True, ("f32", "bf16")),
])  # fmt: skip
def test_the_cap_decides_the_kernels(monkeypatch, flags, cap, isa, vnni, precisions):
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("Test CPU", flags))
    if cap:
        monkeypatch.setenv(cpu.ISA_ENV, cap)
    else:
        monkeypatch.delenv(cpu.ISA_ENV, raising=False)
    assert cpu.effective_isa() == isa and cpu.has_vnni() is vnni and cpu.native_precisions() == precisions
    assert cpu.describe().startswith("Test CPU (native ") and (("capped to" in cpu.describe()) is bool(cap))


def test_cap_env_sets_or_clears_the_cap(monkeypatch):
    monkeypatch.setenv(cpu.ISA_ENV, "AVX2")
    assert cpu.ISA_ENV not in cpu.cap_env(None)
    assert cpu.cap_env("AVX512_CORE")[cpu.ISA_ENV] == "AVX512_CORE"


def test_this_machine_is_described():
    assert cpu.cpu_model() and "native" in cpu.describe()
