"""``status --html FILE``: the week as one self-contained HTML page (inline SVG, no script, no network).

Per date: the latency stages (Phase 4 done → event → first request → batch complete) as a stacked bar,
completion as a bar against the 95 % goal, stragglers and alerts; then the go/no-go checklist and the
Month-1 metrics, each with its evidence. Every value is escaped: the page holds only what it was given.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nba_phase5.status import DayStatus, StatusReport

STAGES = (
    ("phase4_to_event_s", "Phase 4 done → event", "#8da0cb"),
    ("event_to_first_request_s", "event → first request", "#66c2a5"),
    ("first_request_to_complete_s", "first request → complete", "#fc8d62"),
)
ROW, LABEL, WIDTH = 28, 110, 560
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse} td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
.go{color:#1a7f37;font-weight:600} .nogo{color:#b42318;font-weight:600} .muted{color:#666}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""


def _svg(height: int, body: str) -> str:
    size = f'width="{LABEL + WIDTH + 80}" height="{height}"'
    return f'<svg xmlns="http://www.w3.org/2000/svg" {size} role="img">{body}</svg>'


def latency_chart(days: list[DayStatus]) -> str:
    """Stacked horizontal bars: each date's three latency stages, on a shared seconds scale."""
    totals = [sum(getattr(d, key) or 0.0 for key, _, _ in STAGES) for d in days]
    scale = WIDTH / max([*totals, 1.0])
    parts = []
    for row, (day, total) in enumerate(zip(days, totals, strict=True)):
        y, x = row * ROW + 4, float(LABEL)
        parts.append(f'<text x="0" y="{y + 15}">{escape(day.game_date)}</text>')
        for key, name, colour in STAGES:
            seconds = getattr(day, key)
            if seconds:
                width = seconds * scale
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="20" fill="{colour}">'
                    f"<title>{escape(name)}: {seconds:.1f} s</title></rect>"
                )
                x += width
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{total:.0f} s</text>' if total else "")
    return _svg(len(days) * ROW + 8, "".join(parts))


def completion_chart(days: list[DayStatus], goal: float) -> str:
    """One bar per date: completion %, with the goal as a line."""
    parts = []
    for row, day in enumerate(days):
        y, pct = row * ROW + 4, day.completion_pct
        colour = "#1a7f37" if pct is not None and pct > goal else "#b42318"
        parts.append(f'<text x="0" y="{y + 15}">{escape(day.game_date)}</text>')
        if pct is not None:
            parts.append(f'<rect x="{LABEL}" y="{y}" width="{WIDTH * pct / 100:.1f}" height="20" fill="{colour}"/>')
        parts.append(f'<text x="{LABEL + WIDTH + 6}" y="{y + 15}">{"-" if pct is None else f"{pct:.1f} %"}</text>')
    goal_x = LABEL + WIDTH * goal / 100
    parts.append(
        f'<line x1="{goal_x:.1f}" x2="{goal_x:.1f}" y1="0" y2="{len(days) * ROW + 8}" stroke="#333" '
        f'stroke-dasharray="4 3"><title>goal {goal:g} %</title></line>'
    )
    return _svg(len(days) * ROW + 8, "".join(parts))


def _day_rows(days: list[DayStatus]) -> str:
    rows = []
    for d in days:
        alerts = ", ".join(f"{n} {escape(s)}" for s, n in sorted(d.alerts.items())) or "none"
        stragglers = "+".join(map(str, d.straggler_requests)) or "-"
        cells = (d.game_date, d.status or "-", d.triggered_by or "-", f"{d.players_predicted}/{d.players_ready or '-'}")
        rows.append(
            "<tr>"
            + "".join(f"<td>{escape(str(c))}</td>" for c in cells)
            + f"<td>{escape(stragglers)}</td><td>{alerts}</td></tr>"
        )
    return "".join(rows)


def render_html(status: StatusReport, goal: float) -> str:
    """The whole page for ``status`` (completion ``goal`` in %)."""
    days = [d for d in status.days if d.status and d.status != "no_games"]
    off_days = sum(1 for d in status.days if d.status == "no_games")
    verdict = '<span class="go">GO</span>' if status.go else '<span class="nogo">NO-GO</span>'
    checks = "".join(
        f"<tr><td>{'✔' if c.passed else '✘'}</td><td>{escape(c.name)}</td><td>{escape(c.detail)}</td></tr>"
        for c in status.checklist
    )
    metrics = "".join(
        f"<tr><td>{'✔' if m.met else '✘'}</td><td>{escape(m.name)}</td><td>{escape(m.goal)}</td>"
        f"<td>{escape(m.value)}</td><td class='muted'>{escape(m.evidence)}</td></tr>"
        for m in status.metrics
    )
    legend = "".join(f'<span style="background:{c}"></span>{escape(n)}' for _, n, c in STAGES)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Phase 5 predictions {escape(status.first)} → {escape(status.last)}</title><style>{STYLE}</style></head><body>
<h1>Phase 5 predictions, {escape(status.first)} → {escape(status.last)}</h1>
<div>Go/no-go: {verdict} <span class="muted">({len(days)} game days with a run, {off_days} off days)</span></div>
<h2>Latency: Phase 4 done → batch complete</h2><div class="legend">{legend}</div>{latency_chart(days)}
<h2>Completion (goal &gt; {goal:g} %)</h2>{completion_chart(days, goal)}
<h2>Runs, stragglers and alerts</h2>
<table><tr><th>date</th><th>outcome</th><th>triggered by</th><th>predicted/ready</th><th>stragglers per round</th>
<th>alerts</th></tr>{_day_rows(days)}</table>
<h2>Go/no-go checklist</h2><table>{checks}</table>
<h2>Month-1 metrics</h2>
<table><tr><th></th><th>metric</th><th>goal</th><th>value</th><th>evidence</th></tr>{metrics}</table>
</body></html>
"""
