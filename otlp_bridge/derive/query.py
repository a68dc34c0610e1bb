"""Read-side helpers over the store: totals grouped by labels, histogram sums and counts."""

from __future__ import annotations

from collections import defaultdict

from otlp_bridge.series import Labels
from otlp_bridge.store.accumulator import HistogramTotal, Store, Total


def totals_by(
    store: Store, family: str, *keys: str, where: dict[str, str] | None = None,
) -> dict[tuple[str, ...], float]:
    """Sum of a counter/gauge family's series grouped by `keys` (missing labels group as '')."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    found = store.families.get(family)
    if found is None:
        return {}
    for labels, series in found.series.items():
        if not isinstance(series, Total):
            continue
        values = dict(labels)
        if where and any(values.get(k) != v for k, v in where.items()):
            continue
        out[tuple(values.get(k, "") for k in keys)] += series.value
    return dict(out)


def total(store: Store, family: str, where: dict[str, str] | None = None) -> float:
    return sum(totals_by(store, family, where=where).values())


def histogram_by(store: Store, family: str, *keys: str) -> dict[tuple[str, ...], tuple[int, float]]:
    """(count, sum) of a histogram family grouped by `keys`."""
    out: dict[tuple[str, ...], tuple[int, float]] = {}
    found = store.families.get(family)
    if found is None:
        return out
    for labels, series in found.series.items():
        if not isinstance(series, HistogramTotal):
            continue
        values = dict(labels)
        key = tuple(values.get(k, "") for k in keys)
        count, total_ = out.get(key, (0, 0.0))
        out[key] = (count + series.count, total_ + series.sum.value)
    return out


def series_of(store: Store, family: str) -> list[tuple[Labels, float]]:
    found = store.families.get(family)
    if found is None:
        return []
    return [(labels, s.value) for labels, s in found.series.items() if isinstance(s, Total)]
