"""Issue 11's targets beside what one run of benchmarks/run.py measured, each met or not.

Every figure is read from that run's results (the floor and the bridge measured in the same minutes);
the Kubernetes row compares the run's peak RSS at the series cap with deploy/k8s/deployment.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmarks.scale import peak_rss_mib

DEPLOYMENT = Path(__file__).resolve().parent.parent / "deploy" / "k8s" / "deployment.yaml"
HEADROOM = 1.25  # the memory limit over the measured peak: allocator and page-cache noise, a busier scrape
UNITS = {"Ki": 2**-10, "Mi": 1, "Gi": 2**10}


def memory_mib(kind: str = "limits", path: Path = DEPLOYMENT) -> float:
    """The bridge container's memory `limits` or `requests` in the Deployment, in MiB."""
    (deployment,) = (d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    quantity = str(container["resources"][kind]["memory"])
    return float(quantity[:-2]) * UNITS[quantity[-2:]]


def _row(target: str, measured: str, goal: str, met: bool | None) -> dict[str, object]:
    return {"target": target, "measured": measured, "goal": goal, "met": met}


def _ingest(ratios: dict[str, dict[str, float]]) -> list[dict[str, object]]:
    rows = []
    for transport, r in ratios.items():
        for name, key, cpu_name, goal in (("durable / floor", "bridge/floor", "floor ÷ durable", 0.6),
                                          ("durable / memory-only", "durable/memory", "memory-only ÷ durable", 0.9)):
            throughput, cpu = r[f"{key} throughput"], r[f"{key} CPU efficiency"]
            rows.append(_row(f"ingest {name}, {transport}: exports/s", f"{throughput:.2f}", f"≥ {goal}",
                             throughput >= goal))
            rows.append(_row(f"ingest {name}, {transport}: server CPU per export ({cpu_name})", f"{cpu:.2f}",
                             f"≥ {goal}", cpu >= goal))
    return rows


def _scale(scale: dict[str, Any], slopes: dict[str, float], client_slopes: dict[str, float]) -> list[dict[str, object]]:
    last = scale["levels"][-1]
    n = f"{last['series']:,}"
    rows = [_row(f"/metrics at {n} series, {fmt} ({when})", f"{last[key]:.3f} s (server CPU {last[cpu]:.3f} s)",
                 "≤ 0.3 s", last[key] <= 0.3)
            for fmt in ("text", "openmetrics")
            for when, key, cpu in (("first render after growth", f"{fmt}_first_s", f"{fmt}_first_cpu_s"),
                                   ("after a change", f"{fmt}_s", f"{fmt}_cpu_s"))]
    effect = scale["scrape_effect"]
    rows.append(_row(f"export p99, back-to-back scrapes / quiet ({effect['series']:,} series)",
                     f"×{effect['ratio']} ({effect['p99_ms_scraping']} vs {effect['p99_ms_quiet']} ms; "
                     f"rounds {effect['ratio_per_round']})", "≤ ×2", effect["ratio"] <= 2))
    rows.append(_row(f"RSS per live series at {n}", f"{last['rss_per_series_bytes'] / 1024:.2f} KiB", "≤ 1 KiB",
                     last["rss_per_series_bytes"] <= 1024))
    for case, key in (("a clean stop", "restart_after_stop"), ("kill -9", "restart_after_kill9")):
        restart = scale[key]
        rows.append(_row(f"restart with {restart['live_grown_series']:,} series after {case}",
                         f"{restart['ready_s']:.2f} s to /readyz", "≤ 2 s", restart["ready_s"] <= 2))
    rows.append(_row("slopes per ×10 series (log-log)", ", ".join(f"{k} {v}" for k, v in slopes.items()), "stated",
                     True))
    rows.append(_row("slopes per ×10 clients (log-log)", ", ".join(f"{k} {v}" for k, v in client_slopes.items()),
                     "stated", True))
    peak = peak_rss_mib(scale)
    limit = memory_mib()
    rows.append(_row(f"Kubernetes memory limit vs peak RSS at the series cap ({scale['cap']['series_sent']:,} sent; "
                     "with the history cap too: benchmarks/sizing.py)",
                     f"peak {peak:.0f} MiB, limit {limit:.0f} MiB", f"limit ≥ {HEADROOM} × peak",
                     limit >= HEADROOM * peak))
    return rows


def table(ratios: dict[str, dict[str, float]], scale: dict[str, Any], slopes: dict[str, float],
          client_slopes: dict[str, float]) -> list[dict[str, object]]:
    return _ingest(ratios) + _scale(scale, slopes, client_slopes)


def render(rows: list[dict[str, object]]) -> str:
    """A Markdown table: the README takes it as it is."""
    marks = {True: "yes", False: "**no**", None: "—"}
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['measured']} | {r['goal']} | {marks[r['met']]} |" for r in rows]  # type: ignore[index]
    return "\n".join(lines)
