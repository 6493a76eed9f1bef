"""Measuring models on this machine: parameters, memory, latency per image or query; fp32 vs bf16 vs dynamic int8.

Every number a lesson prints about speed or size comes from here, measured in the
same run, never copied from a paper or a model card.
"""
from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .precision import TORCH_INT8

VARIANTS = ("fp32", "bf16", TORCH_INT8)  # the precisions a lesson compares a torch model at (names: ``precision``)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes the weights take in memory, including packed int8 weights of dynamically quantised layers."""
    total = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            total += weight.numel() * weight.element_size() + (bias.numel() * bias.element_size() if bias is not None else 0)
    return total


def latency_per_item(run: Callable[[Sequence], object], items: Sequence, warmup: int = 1, repeats: int = 3) -> float:
    """Median seconds per item of ``run(items)`` over ``repeats`` timed calls, after ``warmup`` untimed ones."""
    with torch.inference_mode():
        for _ in range(warmup):
            run(items)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run(items)
            times.append(time.perf_counter() - started)
    return statistics.median(times) / max(1, len(items))


def torch_int8(model: torch.nn.Module) -> torch.nn.Module:
    """torch's own dynamic int8 (``quantize_dynamic`` on every ``nn.Linear``) of a copy of ``model`` in fp32."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks its quantised modules deprecated in favour of torchao
        return quantize_dynamic(copy.deepcopy(model).float().eval(), {torch.nn.Linear}, dtype=torch.qint8)


def model_variant(model: torch.nn.Module, variant: str) -> torch.nn.Module:
    """A copy of ``model`` in fp32, bf16, or with its Linear layers dynamically quantised to int8 (``TORCH_INT8``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    if variant == TORCH_INT8:
        return torch_int8(model)
    model = copy.deepcopy(model).float().eval()
    return model.to(torch.bfloat16) if variant == "bf16" else model


def text_latency_ms(encoder, queries: Sequence[str], repeats: int = 3, warmup: int = 2) -> dict:
    """p50/p95 milliseconds to turn one query into a vector (tokenise + text tower + normalise), batch 1."""
    for text in list(queries)[:warmup]:
        encoder.encode_texts([text])
    times = []
    for _ in range(repeats):
        for text in queries:
            started = time.perf_counter()
            encoder.encode_texts([text])
            times.append(time.perf_counter() - started)
    return {"p50_ms": round(1000 * statistics.median(times), 2),
            "p95_ms": round(1000 * float(np.percentile(times, 95)), 2), "queries": len(times)}


def variant_row(name: str, run: Callable[[Sequence], object], items: Sequence, parameters: int, memory_bytes: int,
                quality: Callable[[], float] | None = None, repeats: int = 3) -> dict:
    """One measured row: parameters, weight MB, milliseconds per item and (optionally) a quality score."""
    row = {"variant": name, "parameters": parameters, "weights_mb": round(memory_bytes / 2**20, 2),
           "ms_per_item": round(1000 * latency_per_item(run, items, repeats=repeats), 2)}
    if quality is not None:
        row["quality"] = round(float(quality()), 3)
    return row


def compare_precisions(model: torch.nn.Module, run: Callable[[torch.nn.Module, Sequence], object],
                       items: Sequence, quality: Callable[[torch.nn.Module], float] | None = None,
                       precisions: Sequence[str] = VARIANTS, repeats: int = 3) -> list[dict]:
    """One row per precision: parameters, weight MB, seconds per item and (optionally) a quality score."""
    rows = []
    for precision in precisions:
        variant = model_variant(model, precision)
        rows.append(variant_row(precision, lambda xs: run(variant, xs), items, count_parameters(model),
                                weight_bytes(variant), (lambda: quality(variant)) if quality else None, repeats))
    return rows


def format_table(rows: list[dict], columns: Sequence[str] | None = None, headers: dict | None = None) -> str:
    """Rows of dicts as a fixed-width text table (Markdown-compatible); ``headers`` renames columns for display
    (``TABLE_HEADERS_ZH`` for a Chinese table). Widths count a Chinese character as two columns."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0])
    names = [(headers or {}).get(c, c) for c in columns]
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    width = lambda text: sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)
    widths = [max(width(n), *(width(r[i]) for r in cells)) for i, n in enumerate(names)]
    line = lambda values: "| " + " | ".join(v + " " * (w - width(v)) for v, w in zip(values, widths)) + " |"
    return "\n".join([line(names), line(["-" * w for w in widths]), *map(line, cells)])


TABLE_HEADERS_ZH = {"model": "模型", "weights": "权重", "dtype": "dtype", "parameters_m": "参数量（M）",
                    "memory_mb": "内存（MB）", "ms_per_item": "每项毫秒", "per": "单位", "used_in": "用于",
                    "purpose": "用途", "variant": "方案", "parameters": "参数量", "weights_mb": "权重（MB）",
                    "quality": "质量", "note": "备注"}


def bar_plot(rows: list[dict], label: str, value: str, title: str, log: bool = False, xlabel: str | None = None):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    axis.barh([str(r[label]) for r in rows], [r[value] for r in rows], color="tab:blue")
    axis.invert_yaxis()
    axis.set_xlabel(xlabel or value.replace("_", " "))
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 1, 2, 5, 10, 20 ... even on a short axis
        axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))  # 1, 10, 100 rather than 10^0 ...
        axis.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a short axis
    axis.set_title(title)
    for i, r in enumerate(rows):
        axis.text(r[value], i, f" {r[value]}", va="center", fontsize=8)
    largest = max(r[value] for r in rows)
    if log:  # start at a power of ten below the smallest bar, so the axis has a labelled origin
        import math

        axis.set_xlim(10 ** math.floor(math.log10(min(r[value] for r in rows))), largest * 1.6)
    else:
        axis.set_xlim(0, largest * 1.12)  # room for the value written after the longest bar
    figure.tight_layout()
    return figure


AXIS_LABELS = {"ms_per_item": "milliseconds per item (lower is faster)", "weights_mb": "weights in memory, MB",
               "quality": "held-out quality (higher is better)"}
AXIS_LABELS_ZH = {"ms_per_item": "每项毫秒数（越低越快）", "weights_mb": "内存中的权重，MB",
                  "quality": "留出数据上的质量（越高越好）"}


def tradeoff_plot(rows: list[dict], title: str, axis_labels: dict | None = None):
    """Latency, weight memory and quality of each variant side by side (rows from ``variant_row``);
    ``axis_labels`` replaces ``AXIS_LABELS`` (``AXIS_LABELS_ZH`` for a Chinese figure)."""
    import matplotlib.pyplot as plt

    columns = [c for c in ("ms_per_item", "weights_mb", "quality") if any(c in r for r in rows)]
    figure, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 0.5 * len(rows) + 1.5), sharey=True)
    for axis, column in zip(axes if len(columns) > 1 else [axes], columns):
        measured = [r for r in rows if column in r]
        axis.barh([r["variant"] for r in measured], [r[column] for r in measured], color="tab:blue")
        for i, r in enumerate(measured):
            axis.text(r[column], i, f" {r[column]}", va="center", fontsize=8)
        axis.set_xlim(0, 1.18 * max(r[column] for r in measured))  # room for the value after the longest bar
        axis.set_xlabel((axis_labels or AXIS_LABELS).get(column, column.replace("_", " ")))
    axes[0].invert_yaxis() if len(columns) > 1 else axes.invert_yaxis()
    figure.suptitle(title)
    figure.tight_layout()
    return figure
