"""``status --html FILE``: the week as one self-contained HTML page (inline SVG, no script, no network).

Per date: the latency stages (Phase 4 done → event → first request → batch complete) as a stacked bar in
minutes, completion as a bar coloured by the run's outcome against the goal's line, each chart with its axes
and legend; stragglers and alerts; then the go/no-go checklist and the Month-1 metrics, each with its evidence.
Every value is escaped: the page holds only what it was given.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nba_phase5_local.status import DayStatus, StatusReport

STAGES = (
    ("phase4_to_event_s", "Phase 4 done → event", "#8da0cb"),
    ("event_to_first_request_s", "event → first request", "#66c2a5"),
    ("first_request_to_complete_s", "first request → complete", "#fc8d62"),
)
#: The run-history ``status`` values a finished run ends with, in the Okabe-Ito palette (safe for colour-blind
#: readers): the completion bars are coloured by them, so a partial day never looks like a success.
OUTCOMES = (
    ("success", "#009e73"),
    ("partial", "#e69f00"),
    ("failed", "#d55e00"),
    ("skipped", "#999999"),
)
#: Any other status the column holds (a run still ``running``) gets this colour and its own legend entry.
OTHER_OUTCOME = "#56b4e9"
#: Each bar's row, the dates' column, the plot's width, and room right of it for the bar's figure.
ROW, BAR, LABEL, WIDTH, RIGHT = 28, 20, 110, 560, 140
#: Room above the bars (the goal's label) and below them (tick labels and the axis title); a bar's top in its
#: row, and the baseline of the texts beside it.
TOP, BOTTOM, PAD, BASELINE = 24, 50, 4, 15
LATENCY_TICKS, COMPLETION_TICK_PCT = 8, 10
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse} td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
.go{color:#1a7f37;font-weight:600} .nogo{color:#b42318;font-weight:600} .muted{color:#666}
.legend i{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
.legend i.goal-key{width:18px;height:0;border-top:2px dashed #222}
svg text{font-size:13px;fill:#222} svg .tick,svg .unit{fill:#555;font-size:12px}
svg .axis{stroke:#444} svg .grid{stroke:#e4e4e4} svg .goal{stroke:#222;stroke-width:2;stroke-dasharray:5 3}
"""


def ticks(top: float, count: int) -> list[float]:
    """Round values from 0 to at least ``top``: about ``count`` steps of 1, 2 or 5 times a power of ten.

    :param top: the largest value the axis must reach (an axis with nothing to show reaches 1).
    :param count: how many steps the axis should have, roughly.
    """
    top = top if top > 0 else 1.0
    raw = top / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    return [round(i * step, 9) for i in range(max(1, math.ceil(top / step - 1e-9)) + 1)]


def outcome_colour(day: DayStatus) -> tuple[str, str]:
    """(status, colour) of the day's latest run, from the run-history ``status`` column.

    :param day: the date's figures.
    """
    status = day.run_status or day.status or "-"
    return status, dict(OUTCOMES).get(status, OTHER_OUTCOME)


def _svg(rows: int, body: str) -> str:
    """A chart of ``rows`` bars with room for its axes.

    :param rows: how many bars the chart has.
    :param body: the chart's SVG elements.
    """
    size = f'width="{LABEL + WIDTH + RIGHT}" height="{TOP + rows * ROW + BOTTOM}"'
    return f'<svg xmlns="http://www.w3.org/2000/svg" {size} role="img">{body}</svg>'


def _frame(days: list[DayStatus], values: list[float], title: str) -> str:
    """The axes under the bars: dates down the y axis; the x axis's gridlines, ticks, labels and ``title``.

    :param days: the dates, one bar each, top to bottom.
    :param values: the x axis's tick values, from 0 (drawn at ``LABEL``) to the last (at ``LABEL + WIDTH``).
    :param title: the x axis's title, with its unit.
    """
    bottom = TOP + len(days) * ROW
    parts = []
    for value in values:
        x = LABEL + WIDTH * value / values[-1]
        parts.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}"/>'
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 5}"/>'
            f'<text class="tick" x="{x:.1f}" y="{bottom + 19}" text-anchor="middle">{value:g}</text>'
        )
    for row, day in enumerate(days):
        y = TOP + row * ROW + PAD + BASELINE
        parts.append(f'<text x="{LABEL - 8}" y="{y}" text-anchor="end">{escape(day.game_date)}</text>')
    parts.append(
        f'<line class="axis" x1="{LABEL}" x2="{LABEL}" y1="{TOP}" y2="{bottom}"/>'
        f'<line class="axis" x1="{LABEL}" x2="{LABEL + WIDTH}" y1="{bottom}" y2="{bottom}"/>'
        f'<text class="unit" x="{LABEL - 8}" y="{TOP - 8}" text-anchor="end">game date</text>'
        f'<text class="unit" x="{LABEL + WIDTH / 2:.1f}" y="{bottom + 40}" text-anchor="middle">{escape(title)}</text>'
    )
    return "".join(parts)


def latency_chart(days: list[DayStatus]) -> str:
    """Stacked horizontal bars: each date's three latency stages, on a shared scale in minutes.

    :param days: the game days to draw, one bar each.
    """
    totals = [sum(getattr(d, key) or 0.0 for key, _, _ in STAGES) for d in days]
    # Minutes read better than seconds here: a batch takes a few of them, and the goals are set in them.
    values = ticks(max(totals, default=0.0) / 60, LATENCY_TICKS)
    scale = WIDTH / (values[-1] * 60)
    parts = [_frame(days, values, "minutes after Phase 4 done")]
    for row, (day, total) in enumerate(zip(days, totals, strict=True)):
        y, x = TOP + row * ROW + PAD, float(LABEL)
        for key, name, colour in STAGES:
            seconds = getattr(day, key)
            if seconds:
                width = seconds * scale
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR}" fill="{colour}">'
                    f"<title>{escape(day.game_date)} {escape(name)}: {seconds:.1f} s</title></rect>"
                )
                x += width
        figure = f"{total / 60:.1f} min" if total else "-"  # a run that sent no request has no stages
        parts.append(f'<text x="{x + 6:.1f}" y="{y + BASELINE}">{figure}</text>')
    return _svg(len(days), "".join(parts))


def completion_chart(days: list[DayStatus], goal: float) -> str:
    """One bar per date: its length the completion %, its colour the run's outcome; the goal as a line.

    :param days: the game days to draw, one bar each.
    :param goal: the completion goal in % (drawn as a labelled vertical line).
    """
    parts = [_frame(days, ticks(100.0, COMPLETION_TICK_PCT), "% of ready players predicted")]
    for row, day in enumerate(days):
        y, pct = TOP + row * ROW + PAD, day.completion_pct
        status, colour = outcome_colour(day)
        figure = "-" if pct is None else f"{pct:.1f} %"
        if pct is not None:
            parts.append(
                f'<rect x="{LABEL}" y="{y}" width="{WIDTH * pct / 100:.1f}" height="{BAR}" fill="{colour}">'
                f"<title>{escape(day.game_date)}: {figure}, {escape(status)}</title></rect>"
            )
        parts.append(f'<text x="{LABEL + WIDTH + 6}" y="{y + BASELINE}">{figure} {escape(status)}</text>')
    goal_x, bottom = LABEL + WIDTH * goal / 100, TOP + len(days) * ROW
    parts.append(
        f'<line class="goal" x1="{goal_x:.1f}" x2="{goal_x:.1f}" y1="{TOP - 4}" y2="{bottom}"/>'
        f'<text x="{goal_x:.1f}" y="{TOP - 8}" text-anchor="middle">goal &gt; {goal:g} %</text>'
    )
    return _svg(len(days), "".join(parts))


def _legend(entries: list[tuple[str, str]]) -> str:
    """A colour swatch and its name per entry.

    :param entries: (name, colour) pairs, in the order they are shown.
    """
    return "".join(f'<span><i style="background:{colour}"></i>{escape(name)}</span>' for name, colour in entries)


def outcome_legend(days: list[DayStatus], goal: float) -> str:
    """The four outcomes (and any other status a day shows), then the goal line's key.

    :param days: the game days the completion chart draws.
    :param goal: the completion goal in %.
    """
    entries = list(OUTCOMES)
    for day in days:
        entry = outcome_colour(day)
        if entry not in entries:
            entries.append(entry)
    return _legend(entries) + f'<span><i class="goal-key"></i>goal &gt; {goal:g} %</span>'


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
    legend = _legend([(name, colour) for _, name, colour in STAGES])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Phase 5 predictions {escape(status.first)} → {escape(status.last)}</title><style>{STYLE}</style></head><body>
<h1>Phase 5 predictions, {escape(status.first)} → {escape(status.last)}</h1>
<div>Go/no-go: {verdict} <span class="muted">({len(days)} game days with a run, {off_days} off days)</span></div>
<h2>Latency: Phase 4 done → batch complete</h2><div class="legend">{legend}</div>{latency_chart(days)}
<h2>Completion by outcome (goal &gt; {goal:g} %)</h2>
<div class="legend">{outcome_legend(days, goal)}</div>{completion_chart(days, goal)}
<h2>Runs, stragglers and alerts</h2>
<table><tr><th>date</th><th>outcome</th><th>triggered by</th><th>predicted/ready</th><th>stragglers per round</th>
<th>alerts</th></tr>{_day_rows(days)}</table>
<h2>Go/no-go checklist</h2><table>{checks}</table>
<h2>Month-1 metrics</h2>
<table><tr><th></th><th>metric</th><th>goal</th><th>value</th><th>evidence</th></tr>{metrics}</table>
</body></html>
"""
