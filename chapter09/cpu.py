"""What this CPU can do fast, read once from /proc/cpuinfo: the one place every precision decision asks.

Machines of one kind differ: some x86 CPUs have AVX-512 with BF16 and VNNI (bf16 matmuls several times
faster than fp32, int8 faster still), others only AVX2 + FMA (bf16 is then *slower* than fp32). Code asks
``has_native_bf16()`` / ``has_int8_dot()``, never the flags themselves.

``CH09_HIDE_CPU_FEATURES`` (``config.ENV_HIDE_CPU_FEATURES``) hides flags from these checks, so one
machine can run the code paths of the other kind: each comma-separated word hides every flag that
contains it (``bf16`` hides ``avx512_bf16`` and ``amx_bf16``; ``avx512`` every AVX-512 flag). It changes
what the code *decides*, not what the silicon does: to make oneDNN's kernels behave like an AVX2-only CPU
as well, also set ``ONEDNN_MAX_CPU_ISA=AVX2`` before torch is imported.
"""
from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from . import config

# The flags that decide a precision's speed on x86, in the order a report lists them.
RELEVANT = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo; empty flags where there is none (macOS, Windows)."""
    name, flags = "", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not name:
                name = value.strip()
            elif key == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def hidden_words() -> tuple[str, ...]:
    raw = os.environ.get(config.ENV_HIDE_CPU_FEATURES, "")
    return tuple(word.strip().lower() for word in raw.split(",") if word.strip())


def flags() -> frozenset[str]:
    """The CPU's flags, less those ``CH09_HIDE_CPU_FEATURES`` hides."""
    words = hidden_words()
    return frozenset(flag for flag in _cpuinfo()[1] if not any(word in flag for word in words))


def cpu_name() -> str:
    return _cpuinfo()[0]


def has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX-BF16: bf16 dot products in hardware, where bf16 beats fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & flags())


def has_int8_dot() -> bool:
    """VNNI (AVX-512 or AVX) or AMX-INT8: int8 dot products in one instruction, where int8 pulls ahead."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags())


def features() -> dict:
    """What a benchmark prints at its top and stores in its JSON: the CPU, its relevant flags, what is hidden."""
    present = flags()
    return {"cpu": cpu_name(), "cores": os.cpu_count(),
            "flags": {flag: flag in present for flag in RELEVANT},
            "native_bf16": has_native_bf16(), "int8_dot": has_int8_dot(),
            "hidden": list(hidden_words()), "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}


def describe() -> str:
    """One line: the CPU and which of the relevant flags it has (and which are hidden)."""
    info = features()
    have = [flag for flag, present in info["flags"].items() if present] or ["none of " + ", ".join(RELEVANT)]
    line = f"{info['cpu']} ({info['cores']} cores): {' '.join(have)}"
    if info["hidden"]:
        line += f"  [hidden by {config.ENV_HIDE_CPU_FEATURES}: {','.join(info['hidden'])}]"
    if info["onednn_max_isa"]:
        line += f"  [ONEDNN_MAX_CPU_ISA={info['onednn_max_isa']}]"
    return line
