"""The status page: one self-contained HTML document (no external assets), refreshing itself."""

from __future__ import annotations

import html
from typing import Any

from otlp_bridge.derive.insights import usd

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#0f1115;color:#e6e6e6}
header{padding:12px 20px;background:#171a21;display:flex;justify-content:space-between}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:14px;padding:16px}
section{background:#171a21;border-radius:8px;padding:12px 16px}
h1{font-size:18px;margin:0}h2{font-size:13px;text-transform:uppercase;color:#9aa4b2;margin:0 0 8px}
.big{font-size:28px;font-weight:600}.muted{color:#9aa4b2}
section.wide{grid-column:span 2}
table{width:100%;border-collapse:collapse}td,th{padding:3px 4px;text-align:left}td.n,th.n{text-align:right}
.warning{color:#f0b429}.critical{color:#ff6b6b}.info{color:#7cc4fa}
svg text{fill:#e6e6e6;font-size:12px}
"""


def _money(value: float | None) -> str:
    return "—" if value is None else usd(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _gauge(ratio: float) -> str:
    """A half-circle gauge; red past 100 %."""
    shown = max(0.0, min(ratio, 1.0))
    color = "#ff6b6b" if ratio >= 1 else "#f0b429" if ratio >= 0.8 else "#3ecf8e"
    length = 125.66 * shown  # half of a circle of radius 40
    return (f'<svg width="120" height="70" viewBox="0 0 100 60" role="img" aria-label="{_pct(ratio)}">'
            f'<path d="M10 50 A40 40 0 0 1 90 50" stroke="#2a2f3a" stroke-width="10" fill="none"/>'
            f'<path d="M10 50 A40 40 0 0 1 90 50" stroke="{color}" stroke-width="10" fill="none" '
            f'stroke-dasharray="{length:.2f} 200"/><text x="50" y="48" text-anchor="middle">{_pct(ratio)}</text></svg>')


def _rows(rows: list[list[str]], head: list[str]) -> str:
    header = "".join(f'<th class="{"n" if i else ""}">{html.escape(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i else ""}">{c}</td>' for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body or '<tr><td class=muted>nothing yet</td></tr>'}</table>"


def render_page(summary: dict[str, Any], insights: list[dict[str, Any]], refresh_seconds: int = 30) -> str:
    e = html.escape
    cost, tokens, act = summary["cost_usd"], summary["tokens"], summary["activity"]
    budgets = "".join(
        f'<div class="budget" data-budget="{e(b["name"])}">{_gauge(b["used_ratio"] or 0.0)}'
        f'<div><b>{e(b["name"])}</b> <span class="muted">({e(b["period"])})</span><br>'
        f'<span class="spent">{_money(b["spent_usd"])}</span> of {_money(b["limit_usd"])} · '
        f'forecast {_money(b["forecast_usd"])} · {_money(b["burn_rate_usd_per_hour"])}/h</div></div>'
        for b in summary["budgets"]) or '<p class="muted">No budgets configured.</p>'
    models = _rows([[e(m["model"]), _money(m["cost_usd"]), f'{m["requests"]:.0f}', _pct(m["cache_hit_ratio"]),
                     _money(m["cache_savings_usd"])] for m in summary["models"]],
                   ["model", "cost", "requests", "cache hit", "cache saved"])
    tools = _rows([[e(t["tool"]), f'{t["calls"]:.0f}', f'{t["failures"]:.0f}',
                    "—" if t["mean_duration_seconds"] is None else f'{t["mean_duration_seconds"]:.2f} s']
                   for t in summary["tools"]], ["tool", "calls", "failures", "mean time"])
    advice = "".join(
        f'<li class="{e(i["severity"])}"><b>{e(i["type"])}</b>: {e(i["message"])}'
        + (f' <span class="saving">(save ≈ {_money(i["potential_savings_usd"])})</span>'
           if i["potential_savings_usd"] > 0 else "") + "</li>"
        for i in insights) or '<li class="muted">Nothing to recommend.</li>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh_seconds}">
<title>otlp_bridge — Claude Code usage</title><style>{_STYLE}</style></head>
<body><header><h1>Claude Code usage</h1><span class="muted">updated {e(summary["generated_at"] or "")}</span></header>
<main>
<section><h2>Spend</h2><div class="big" id="cost-all-time">{_money(cost["all_time"])}</div>
<div>today <span id="cost-today">{_money(cost["today"])}</span> · this month
<span id="cost-month">{_money(cost["this_month"])}</span></div>
<div>saved by cache <span id="cost-saved">{_money(cost["saved_by_cache"])}</span></div></section>
<section><h2>Tokens</h2><div>sent <span id="tokens-sent">{tokens["sent"]:,.0f}</span> · received
<span id="tokens-received">{tokens["received"]:,.0f}</span></div>
<div>from cache <span id="tokens-cache">{tokens["from_cache"]:,.0f}</span></div>
<div>cache hit <span id="cache-hit">{_pct(tokens["cache_hit_ratio"])}</span></div></section>
<section><h2>Budgets</h2>{budgets}</section>
<section><h2>Activity</h2><div>sessions <span id="sessions">{act["sessions"]:.0f}</span> (active
{act["active_sessions"]}) · prompts {act["prompts"]:.0f}</div><div>lines +{act["lines_added"]:.0f} /
−{act["lines_removed"]:.0f} · commits {act["commits"]:.0f} · PRs {act["pull_requests"]:.0f}</div></section>
<section class="wide"><h2>Models</h2>{models}</section>
<section class="wide"><h2>Tools</h2>{tools}</section>
<section style="grid-column:1/-1"><h2>Insights</h2><ul id="insights">{advice}</ul></section>
</main></body></html>"""
