"""What CPU this is, which instruction sets oneDNN may use on it, and how to cap them.

INT8 convolutions on CPUs differ by instruction set: with VNNI (``vpdpbusd``) u8 x s8 products are
summed into int32 exactly; without it (AVX2, AVX512_CORE) oneDNN pairs them with ``vpmaddubsw``,
which adds two products into int16 with saturation, so full-range int8 weights overflow. OpenVINO's
and PyTorch's CPU kernels come from oneDNN, which honours ``ONEDNN_MAX_CPU_ISA`` when a process
starts: a subprocess with that variable behaves like an older CPU, so every instruction set up to
this machine's can be tested from it.

Example:
    >>> print(describe())
    AMD EPYC (native AVX512_CORE_BF16, VNNI); oneDNN capped to AVX2
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

ISA_ENV = "ONEDNN_MAX_CPU_ISA"

# oneDNN's ISA names, lowest first, each with the /proc/cpuinfo flags it needs (cumulative).
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "AVX2": ("avx2", "fma"),
    "AVX2_VNNI": ("avx2", "fma", "avx_vnni"),
    "AVX512_CORE": ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"),
    "AVX512_CORE_VNNI": ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"),
    "AVX512_CORE_BF16": ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16"),
    "AVX512_CORE_AMX": ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
                        "amx_tile", "amx_int8", "amx_bf16"),  # fmt: skip
}
VNNI_ISAS = ("AVX2_VNNI", "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_AMX")
"""ISAs whose INT8 dot product sums into int32 without saturation."""


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset()
    path = Path("/proc/cpuinfo")
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    return model or platform.processor() or platform.machine(), flags


def cpu_model() -> str:
    """The CPU's name (``/proc/cpuinfo``'s model name; the platform's processor elsewhere)."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of ``/proc/cpuinfo`` (empty where there is none)."""
    return _cpuinfo()[1]


def supported_isas(flags: frozenset[str] | None = None) -> list[str]:
    """The oneDNN ISA names this CPU (or ``flags``) has, lowest first."""
    flags = cpu_flags() if flags is None else flags
    return [isa for isa, needed in ISA_FLAGS.items() if set(needed) <= flags]


def native_isa(flags: frozenset[str] | None = None) -> str | None:
    """The highest oneDNN ISA of ``ISA_FLAGS`` this CPU has (``None``: none of them, or not x86)."""
    isas = supported_isas(flags)
    return isas[-1] if isas else None


def isa_cap() -> str | None:
    """The cap this process runs under (``ONEDNN_MAX_CPU_ISA``), or ``None``."""
    value = os.environ.get(ISA_ENV, "").strip().upper()
    return value or None


def effective_isa() -> str | None:
    """The ISA oneDNN's kernels use here: the cap where it is below the CPU's own, else the CPU's."""
    native, cap = native_isa(), isa_cap()
    isas = supported_isas()
    if cap in ISA_FLAGS and native is not None:
        order = list(ISA_FLAGS)
        below = [isa for isa in isas if order.index(isa) <= order.index(cap)]
        return below[-1] if below else cap
    return native


def has_vnni() -> bool:
    """Whether INT8 dot products here sum into int32 without saturation (VNNI or AMX, under the cap)."""
    return effective_isa() in VNNI_ISAS


def native_precisions() -> tuple[str, ...]:
    """The float precisions this CPU computes natively under the cap: f32, bf16 (AVX512_CORE_BF16 and
    up), f16 (AVX512-FP16, uncapped)."""
    isa, order = effective_isa(), list(ISA_FLAGS)
    found = ["f32"]
    if isa in order and order.index(isa) >= order.index("AVX512_CORE_BF16"):
        found.append("bf16")
    if "avx512_fp16" in cpu_flags() and isa_cap() is None:
        found.append("f16")
    return tuple(found)


def cap_env(isa: str | None) -> dict[str, str]:
    """This process's environment with oneDNN capped to ``isa`` (``None``: uncapped)."""
    env = {k: v for k, v in os.environ.items() if k != ISA_ENV}
    if isa:
        env[ISA_ENV] = isa
    return env


def describe() -> str:
    """One line: the CPU, its highest ISA, VNNI or not, and the cap in force."""
    native = native_isa() or "no AVX2"
    vnni = "VNNI" if native in VNNI_ISAS else "no VNNI"
    cap = isa_cap()
    return f"{cpu_model()} (native {native}, {vnni})" + (f"; oneDNN capped to {cap}" if cap else "")


def isa_flags_line() -> str:
    """The ISA-relevant flags of this CPU, for logs that must trace a result to its machine."""
    wanted = sorted({f for needed in ISA_FLAGS.values() for f in needed} | {"sse4_2", "avx", "f16c", "avx512_fp16"})
    return " ".join(f for f in wanted if f in cpu_flags()) or "(none of the x86 SIMD flags)"


if __name__ == "__main__":
    print(describe())
    print(f"ISA flags: {isa_flags_line()}")
    print(f"oneDNN ISAs this CPU can be capped to: {' '.join(supported_isas()) or 'none'}")
