"""Solutions to the 9.6 exercises."""
import statistics
import time


def latency_per_item(run, items: list, warmup: int = 1, repeats: int = 3, clock=time.perf_counter) -> float:
    for _ in range(warmup):
        run(items)
    times = []
    for _ in range(repeats):
        started = clock()
        run(items)
        times.append(clock() - started)
    return statistics.median(times) / len(items)


def choose_model(rows: list[dict], min_quality: float, max_memory_mb: float) -> str | None:
    fitting = [row for row in rows if "ms_per_item" in row and "quality" in row
               and row["quality"] >= min_quality and row["memory_mb"] <= max_memory_mb]
    return min(fitting, key=lambda row: row["ms_per_item"])["model"] if fitting else None
