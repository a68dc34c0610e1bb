"""The status page: one self-contained HTML document (no external assets, inline SVG), built from the
`/summary` document and the insights, refreshing itself.

Spend; daily spend by model (stacked bars, 30 days); the open 5-hour block and week per user;
budgets (gauge, forecast, runs out at); people (spend and tokens this month, last seen); every coding
agent from the ledger (spend, requests, tokens by type); tokens and the cache's savings per day; models;
tools with failure rates; activity; insights. Sections whose
`/summary` key is absent or empty are left out. Two columns on a laptop, one on a phone; charts
stretch to their column and keep their labels in HTML, so no text shrinks with the width.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from otlp_bridge.derive.insights import usd

_STYLE = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#0f1115;color:#e6e6e6}
header{padding:12px 16px;background:#171a21;display:flex;flex-wrap:wrap;gap:4px 16px;
 justify-content:space-between;align-items:baseline}
main{display:grid;grid-template-columns:minmax(0,1fr);gap:14px;padding:14px;max-width:1400px;margin:auto}
@media (min-width:900px){main{grid-template-columns:minmax(0,3fr) minmax(0,2fr)}}
section{background:#171a21;border-radius:8px;padding:12px 14px;min-width:0}
section.full{grid-column:1/-1}
h1{font-size:18px;margin:0}h2{font-size:13px;text-transform:uppercase;color:#9aa4b2;margin:0 0 8px}
.tiles{display:flex;flex-wrap:wrap;gap:8px 28px}.tile b{display:block;font-size:22px}
.muted{color:#9aa4b2}.id{font-family:ui-monospace,monospace;font-size:12px}
table{width:100%;border-collapse:collapse}td,th{padding:3px 4px;text-align:left;vertical-align:top}
th{color:#9aa4b2;font-weight:500}td.n,th.n{text-align:right;white-space:nowrap}
#plan-windows td,#agents td,#agents th{white-space:normal}
.stack{display:flex;height:6px;border-radius:3px;overflow:hidden;background:#2a2f3a;margin-top:2px}
.toks{display:flex;flex-wrap:wrap;justify-content:flex-end;gap:0 10px;font-size:12px}
.tok{white-space:nowrap}
@media (max-width:600px){.opt{display:none}}
.warning{color:#f0b429}.critical{color:#ff6b6b}.info{color:#7cc4fa}
svg{display:block;width:100%}svg text{fill:#c9d1d9;font-size:12px}
.axis{display:flex;justify-content:space-between;font-size:12px;color:#9aa4b2}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin-top:6px;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.budget{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:center;margin-bottom:10px}
.bar{background:#2a2f3a;border-radius:3px;height:6px;width:100%;min-width:40px;margin-top:2px}
.bar>span{display:block;height:6px;border-radius:3px}
ul{padding-left:18px;margin:0}li{margin-bottom:4px}
"""

_PALETTE = ("#4e9af1", "#f0b429", "#3ecf8e", "#e05d9b", "#9b7bf0", "#f07f4e", "#4ec9d8", "#b5c04e")
_TOP_WINDOWS = 8  # users shown with their plan windows, largest block spend first
# The ledger's token types (translate/agents.py TOKEN_TYPES), as the page names them.
_TOKEN_WORDS = {"input": "input", "cache_read": "cache read", "cache_write": "cache write", "output": "output",
                "reasoning": "reasoning"}


def _money(value: float | None) -> str:
    return "—" if value is None else usd(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes >= 48 * 60:
        return f"{minutes // 1440} d {minutes // 60 % 24} h"
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _who(*parts: str | None) -> str:
    """Identity labels, long ids shortened (the full value in the tooltip)."""
    shown = [p for p in parts if p]
    if not shown:
        return '<span class="muted">unknown</span>'
    full = html.escape(" · ".join(shown))
    short = " · ".join(html.escape(p if len(p) <= 16 else p[:12] + "…") for p in shown)
    return f'<span class="id" title="{full}">{short}</span>'


def _gauge(ratio: float) -> str:
    """A half-circle gauge; red past 100 %."""
    shown = max(0.0, min(ratio, 1.0))
    color = "#ff6b6b" if ratio >= 1 else "#f0b429" if ratio >= 0.8 else "#3ecf8e"
    length = 125.66 * shown  # half of a circle of radius 40
    return (f'<svg class="gauge" style="width:110px" height="64" viewBox="0 0 100 60" role="img" '
            f'aria-label="{_pct(ratio)}"><path d="M10 50 A40 40 0 0 1 90 50" stroke="#2a2f3a" stroke-width="10" '
            f'fill="none"/><path d="M10 50 A40 40 0 0 1 90 50" stroke="{color}" stroke-width="10" fill="none" '
            f'stroke-dasharray="{length:.2f} 200"/><text x="50" y="48" text-anchor="middle">{_pct(ratio)}</text></svg>')


def _bar(ratio: float, color: str) -> str:
    width = max(0.0, min(ratio, 1.0)) * 100
    return f'<div class="bar"><span style="width:{width:.1f}%;background:{color}"></span></div>'


def _rows(rows: Sequence[Sequence[str]], head: Sequence[str], optional: Sequence[int] = (),
          table_id: str = "") -> str:
    """A table of already-escaped cells; columns in `optional` hide on a phone."""
    def cls(i: int) -> str:
        return " ".join(c for c in ("n" if i else "", "opt" if i in optional else "") if c)

    header = "".join(f'<th class="{cls(i)}">{html.escape(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{cls(i)}">{c}</td>' for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><tr>{header}</tr>{body or '<tr><td class=muted>nothing yet</td></tr>'}</table>"


def _rect(slot: int, width: float, span: tuple[float, float], fill: str, title: str, *, data: str = "") -> str:
    """One bar in slot `slot` of a chart drawn in a 100 × 100 box; `span` is its top and height."""
    y, height = span
    return (f'<rect x="{slot * width + width * 0.12:.3f}" y="{y:.3f}" width="{width * 0.76:.3f}" '
            f'height="{height:.3f}" fill="{fill}"{data}><title>{html.escape(title)}</title></rect>')


def _chart(chart_id: str, height_px: int, label: str, baseline: float, bars: list[str]) -> str:
    """Bars in a 100 × 100 box stretched to the column; labels live in HTML, so text never shrinks."""
    return (f'<svg id="{chart_id}" viewBox="0 0 100 100" preserveAspectRatio="none" height="{height_px}" '
            f'role="img" aria-label="{label}"><line x1="0" y1="{baseline}" x2="100" y2="{baseline}" '
            f'stroke="#2a2f3a" vector-effect="non-scaling-stroke"/>{"".join(bars)}</svg>')


def _stacked_bars(days: list[dict[str, Any]], models: list[str]) -> str:
    """Spend per day and model."""
    top = max((d["cost_usd"] or 0.0 for d in days), default=0.0) or 1.0
    step = 100 / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        y = 100.0
        for m, model in enumerate(models):
            value = day["by_model"].get(model, 0.0)
            if value > 0:
                height = value / top * 100
                y -= height
                data = (f' data-day="{html.escape(day["date"])}" data-model="{html.escape(model)}" '
                        f'data-usd="{value!r}"')
                bars.append(_rect(i, step, (y, height), _PALETTE[m % len(_PALETTE)],
                                  f'{day["date"]} {model}: {usd(value)}', data=data))
    return (f'<div class="axis"><span>{html.escape(usd(top))}</span></div>'
            + _chart("daily-chart", 150, "Daily spend by model", 100, bars))


def _daily(summary: dict[str, Any]) -> str:
    days = summary.get("daily") or []
    if not days:
        return ""
    spend: dict[str, float] = {}
    for day in days:
        for model, value in day["by_model"].items():
            spend[model] = spend.get(model, 0.0) + value
    models = sorted(spend, key=lambda m: -spend[m])
    legend = "".join(f'<span><span class="swatch" style="background:{_PALETTE[m % len(_PALETTE)]}"></span>'
                     f'{html.escape(model)} {html.escape(usd(spend[model]))}</span>' for m, model in enumerate(models))
    return (f'<section class="full"><h2>Daily spend, last {len(days)} days</h2>'
            f'<div>total <b id="daily-total">{_money(sum(d["cost_usd"] or 0.0 for d in days))}</b></div>'
            f'{_stacked_bars(days, models)}<div class="axis"><span>{html.escape(days[0]["date"])}</span>'
            f'<span>{html.escape(days[-1]["date"])}</span></div><div class="legend">{legend}</div></section>')


def _savings(summary: dict[str, Any]) -> str:
    """The cache's net savings per day, as small bars (red below the line when it cost more)."""
    days = summary.get("daily") or []
    priced = [d["cache_savings_usd"] for d in days if d.get("cache_savings_usd") is not None]
    if not priced:
        return ""
    top = max(abs(v) for v in priced) or 1.0
    step = 100 / len(days)
    bars = []
    for i, day in enumerate(days):
        saved = day.get("cache_savings_usd")
        if saved:
            height = abs(saved) / top * 50
            bars.append(_rect(i, step, (50 - height if saved > 0 else 50, height),
                              "#3ecf8e" if saved > 0 else "#ff6b6b", f'{day["date"]}: {usd(saved)}'))
    return (f'<div class="muted" style="margin-top:8px">saved by the cache per day, last {len(days)} days '
            f'(<span id="savings-total">{_money(sum(priced))}</span>)</div>'
            + _chart("savings-chart", 60, "Cache savings per day", 50, bars))


def _windows(summary: dict[str, Any]) -> str:
    found = summary.get("plan_windows") or []
    if not found:
        return ""
    by_user: dict[str, dict[str, dict[str, Any]]] = {}
    for window in found:
        by_user.setdefault(window["user"], {})[window["kind"]] = window
    users = sorted(by_user, key=lambda u: -(by_user[u].get("5h") or {}).get("cost_usd", 0.0))
    rows = []
    for user in users[:_TOP_WINDOWS]:
        block, week = by_user[user].get("5h"), by_user[user].get("week")
        if block is None:
            cells = ['<span class="muted">no open block</span>', "", ""]
        else:
            elapsed = 1 - block["seconds_left"] / max(block["seconds_total"], 1.0)
            held = f'{_count(block["tokens"])} tokens · {_count(block["requests"])} req'
            span = f'{html.escape(block["start"][11:16])}–{html.escape(block["end"][11:16])}'
            cells = [f'<span class="block-spent">{_money(block["cost_usd"])}</span><br>'
                     f'<span class="muted opt">{held}</span>',
                     f'<span class="opt">{span}<br></span>'
                     f'<span class="block-left">{_duration(block["seconds_left"])}</span> left'
                     f'{_bar(elapsed, "#4e9af1")}',
                     f'<span class="block-projected">{_money(block["projected_usd"])}</span><br>'
                     f'<span class="muted">{_money(block["burn_rate_usd_per_hour"])}/h</span>']
        week_cell = "—" if week is None else (f'<span class="week-spent">{_money(week["cost_usd"])}</span><br>'
                                              f'<span class="muted">{_duration(week["seconds_left"])} left</span>')
        rows.append([_who(user), *cells, week_cell])
    hidden = len(users) - _TOP_WINDOWS
    more = f'<p class="muted">and {hidden} more user{"s" if hidden > 1 else ""}</p>' if hidden > 0 else ""
    table = _rows(rows, ["user", "5-hour block", "window", "projected", "week"], (3,), "plan-windows")
    return f"<section><h2>Plan windows</h2>{table}{more}</section>"


def _budgets(summary: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f'<div class="budget" data-budget="{e(b["name"])}">{_gauge(b["used_ratio"] or 0.0)}'
        f'<div><b>{e(b["name"])}</b> <span class="muted">({e(b["period"])})</span><br>'
        f'<span class="spent">{_money(b["spent_usd"])}</span> of {_money(b["limit_usd"])}<br>'
        f'forecast <span class="forecast">{_money(b["forecast_usd"])}</span> · {_money(b["burn_rate_usd_per_hour"])}/h'
        + (f'<br><span class="warning runs-out">runs out at {e(b["exhausted_at"][:16].replace("T", " "))}</span>'
           if b.get("exhausted_at") else "") + "</div></div>"
        for b in summary["budgets"]) or '<p class="muted">No budgets configured.</p>'
    return f"<section><h2>Budgets</h2>{rows}</section>"


def _people(summary: dict[str, Any]) -> str:
    people = summary.get("people") or []
    if not people:
        return ""
    rows = [[_who(p.get("user_id"), p.get("device"), p.get("team")), _money(p["cost_usd"]), _count(p["tokens"]),
             "—" if p.get("seconds_ago") is None else f'{_duration(p["seconds_ago"])} ago'] for p in people]
    table = _rows(rows, ["user · device · team", "this month", "tokens", "last seen"], (2,), "people")
    return f"<section><h2>People</h2>{table}</section>"


def _token_mix(tokens: dict[str, float]) -> str:
    """One agent's tokens by type: a stacked bar and the counts, zero types left out."""
    shown = [(i, t, tokens[t]) for i, t in enumerate(_TOKEN_WORDS) if tokens.get(t)]
    whole = sum(v for _, _, v in shown) or 1.0
    stack = "".join(f'<span style="width:{v / whole * 100:.2f}%;background:{_PALETTE[i]}" title="'
                    f'{_TOKEN_WORDS[t]}"></span>' for i, t, v in shown)
    counts = "".join(f'<span class="tok" data-type="{t}"><span class="swatch" style="background:{_PALETTE[i]}">'
                     f'</span>{_TOKEN_WORDS[t]} <b>{_count(v)}</b></span>' for i, t, v in shown)
    return f'<div class="stack">{stack}</div><div class="toks">{counts}</div>' if shown else "—"


def _agents(summary: dict[str, Any]) -> str:
    """Every coding agent in the ledger (derive/ledger.py): cost reported or priced, one meaning of tokens."""
    ledger = summary.get("agents") or {}
    agents = ledger.get("agents") or []
    if not agents:
        return ""
    e = html.escape
    rows = [[f'<b>{e(a["agent"])}</b><br><span class="muted">{e(", ".join(a["cost_sources"]))}</span>'
             + ("".join(f'<br><span class="warning" title="tokens not priced">unpriced {e(m)}</span>'
                        for m in a["unpriced_models"])),
             f'<span class="agent-spend">{_money(a["cost_usd"])}</span>',
             f'<span class="agent-requests">{_count(a["requests"])}</span>',
             _money(a["cost_per_request_usd"]), _token_mix(a["tokens"])] for a in agents]
    table = _rows(rows, ["agent", "spend", "requests", "per request", "tokens by type"], (3,), "agents")
    return (f'<section class="full"><h2>Agents</h2><div>all agents <b id="agents-total">'
            f'{_money(ledger["cost_usd"])}</b></div>{table}</section>')


def _tools(summary: dict[str, Any]) -> str:
    rows = [[html.escape(t["tool"]), f'{t["calls"]:.0f}',
             _pct(t["failure_ratio"]) + (_bar(t["failure_ratio"] or 0.0, "#ff6b6b") if t["failures"] else ""),
             "—" if t["mean_duration_seconds"] is None else f'{t["mean_duration_seconds"]:.2f} s']
            for t in summary["tools"]]
    return f'<section><h2>Tools</h2>{_rows(rows, ["tool", "calls", "failing", "mean time"], (3,), "tools")}</section>'


def render_page(summary: dict[str, Any], insights: list[dict[str, Any]], refresh_seconds: int = 30) -> str:
    e = html.escape
    cost, tokens, act = summary["cost_usd"], summary["tokens"], summary["activity"]
    models = _rows([[e(m["model"]), _money(m["cost_usd"]), f'{m["requests"]:.0f}', _pct(m["cache_hit_ratio"]),
                     _money(m["cache_savings_usd"])] for m in summary["models"]],
                   ["model", "cost", "requests", "cache hit", "cache saved"], (2, 3), "models")
    advice = "".join(
        f'<li class="{e(i["severity"])}"><b>{e(i["type"])}</b>: {e(i["message"])}'
        + (f' <span class="saving">(save ≈ {_money(i["potential_savings_usd"])})</span>'
           if i["potential_savings_usd"] > 0 else "") + "</li>"
        for i in insights) or '<li class="muted">Nothing to recommend.</li>'
    plan = "" if cost.get("plan_value_ratio") is None else (
        f'<div class="tile">plan value<b id="plan-value">{cost["plan_value_ratio"]:.1f}×</b></div>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="{refresh_seconds}"><link rel="icon" href="data:,">
<title>otlp_bridge — Claude Code usage</title><style>{_STYLE}</style></head>
<body><header><h1>Claude Code usage</h1><span class="muted">updated {e(summary["generated_at"] or "")}</span></header>
<main>
<section class="full"><h2>Spend</h2><div class="tiles">
<div class="tile">all time<b id="cost-all-time">{_money(cost["all_time"])}</b></div>
<div class="tile">today<b id="cost-today">{_money(cost["today"])}</b></div>
<div class="tile">this week<b id="cost-week">{_money(cost["this_week"])}</b></div>
<div class="tile">this month<b id="cost-month">{_money(cost["this_month"])}</b></div>
<div class="tile">saved by cache<b id="cost-saved">{_money(cost["saved_by_cache"])}</b></div>{plan}</div></section>
{_daily(summary)}
{_windows(summary)}
{_budgets(summary)}
{_people(summary)}
{_agents(summary)}
<section><h2>Tokens and cache</h2><div>sent <span id="tokens-sent">{tokens["sent"]:,.0f}</span> · received
<span id="tokens-received">{tokens["received"]:,.0f}</span></div>
<div>from cache <span id="tokens-cache">{tokens["from_cache"]:,.0f}</span> · cache hit
<span id="cache-hit">{_pct(tokens["cache_hit_ratio"])}</span></div>{_savings(summary)}</section>
<section><h2>Models</h2>{models}</section>
{_tools(summary)}
<section><h2>Activity</h2><div>sessions <span id="sessions">{act["sessions"]:.0f}</span> (active
{act["active_sessions"]}) · prompts {act["prompts"]:.0f}</div><div>lines +{act["lines_added"]:.0f} /
−{act["lines_removed"]:.0f} · commits {act["commits"]:.0f} · PRs {act["pull_requests"]:.0f}</div>
<div>API requests {summary["api"]["requests"]:.0f} · errors {summary["api"]["errors"]:.0f}</div></section>
<section class="full"><h2>Insights</h2><ul id="insights">{advice}</ul></section>
</main></body></html>"""
