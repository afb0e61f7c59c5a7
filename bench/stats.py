"""Summaries of measured samples: percentiles, and how far an order is from sorted."""

import math
from collections.abc import Sequence

NS_PER_MS = 1_000_000


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values; ``q`` in [0, 100]."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary_ms(latencies_ns: Sequence[int]) -> dict[str, float | None]:
    """p50 / p95 / p99 / max in milliseconds (``None`` each when there are no samples)."""
    if not latencies_ns:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(v / NS_PER_MS for v in latencies_ns)
    return {
        "p50": round(percentile(ordered, 50), 3),
        "p95": round(percentile(ordered, 95), 3),
        "p99": round(percentile(ordered, 99), 3),
        "max": round(ordered[-1], 3),
    }


def inversions(values: Sequence[float]) -> int:
    """Pairs ``i < j`` with ``values[i] > values[j]`` (merge sort, O(n log n))."""

    def sort(items: list[float]) -> tuple[list[float], int]:
        if len(items) <= 1:
            return items, 0
        middle = len(items) // 2
        left, left_count = sort(items[:middle])
        right, right_count = sort(items[middle:])
        merged: list[float] = []
        count = left_count + right_count
        i = j = 0
        while i < len(left) and j < len(right):
            if right[j] < left[i]:
                merged.append(right[j])
                count += len(left) - i
                j += 1
            else:
                merged.append(left[i])
                i += 1
        merged.extend(left[i:])
        merged.extend(right[j:])
        return merged, count

    return sort(list(values))[1]


def inversion_fraction(values: Sequence[float]) -> float:
    """0.0 when ``values`` are in ascending order, about 0.5 when shuffled, 1.0 reversed."""
    pairs = len(values) * (len(values) - 1) // 2
    return 0.0 if pairs == 0 else inversions(values) / pairs
