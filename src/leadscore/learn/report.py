"""A backtest as text (rich tables) and as a self-contained HTML report with charts.

Charts are Vega-Lite specs (altair) rendered offline by vl-convert: inlined as SVG in the HTML
(no script, no network) and written as PNG files beside it.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from leadscore.learn.backtest import Backtest, Evaluation


def _pct(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.1%}"


def _num(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.3f}"


def show(backtest: Backtest, console: Console) -> None:
    """The terminal summary: one headline table, then per model its MQL, bands and rules."""
    first = backtest.evaluations[0]
    console.print(f"Backtest as of {first.as_of}: {first.leads:,} leads, {first.conversions:,} "
                  f"converted ({_pct(first.summary['conversion_rate'])})"
                  + (f" within {first.window_days:g} days" if first.window_days else ""),
                  markup=False, style="bold")
    for note in backtest.notes:
        console.print(f"note: {note}", markup=False, style="yellow")
    if first.conversions == 0 or first.conversions == first.leads:
        # AUC, lift and gains need both converted and unconverted leads: say why, no nans.
        console.print(
            f"nothing to rank: {'none' if first.conversions == 0 else 'every one'} of the "
            f"{first.leads:,} leads converted"
            + (f" within {first.window_days:g} days" if first.window_days else "")
            + f" after {first.as_of}. Choose an earlier --as-of or a longer --window-days, "
              "or check that the outcomes' dates fall after the cut-off.",
            markup=False, style="yellow")
        return
    table = Table(title="Ranking (95 % bootstrap intervals)", title_justify="left")
    for name in ("model", "ROC AUC", "top 10 %", "top 20 %", "top 30 %"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for evaluation in backtest.evaluations:
        iv = evaluation.summary["intervals"]
        table.add_row(evaluation.model, *(str(iv[k]) for k in
                                          ("auc", "capture_10", "capture_20", "capture_30")))
    console.print(table)
    if len(backtest.evaluations) > 1:
        diff = Table(title=f"Difference from {first.model} (paired bootstrap)",
                     title_justify="left")
        for name in ("model", "Δ AUC", "Δ top 20 %"):
            diff.add_column(name, justify="left" if name == "model" else "right")
        for row in backtest.comparison.iloc[1:].itertuples():
            diff.add_row(str(row.model),
                         f"{row.auc_diff:+.3f} [{row.auc_diff_low:+.3f}, {row.auc_diff_high:+.3f}]",
                         f"{row.capture_20_diff:+.3f} [{row.capture_20_diff_low:+.3f}, "
                         f"{row.capture_20_diff_high:+.3f}]")
        console.print(diff)
    for evaluation in backtest.evaluations:
        _show_one(evaluation, console)


def _show_one(e: Evaluation, console: Console) -> None:
    s = e.summary
    if "mql_leads" in s:
        console.print(f"{e.model}: MQL {s['mql_leads']:,} leads, precision "
                      f"{_pct(s['mql_precision'])}, recall {_pct(s['mql_recall'])}; "
                      f"below MQL {_pct(s['conversion_below_mql'])} converted", markup=False)
    gains = Table(title=f"{e.model}: lift and cumulative gains", title_justify="left")
    for name in ("depth", "conversions", "rate", "lift", "gain", "cum. lift"):
        gains.add_column(name, justify="right")
    for row in e.gains.itertuples():
        gains.add_row(f"{row.depth:.0%}", f"{row.conversions:.0f}", _pct(row.conversion_rate),
                      f"{row.lift:.2f}", _pct(row.gain), f"{row.cumulative_lift:.2f}")
    console.print(gains)
    for title, frame, key in (("grade", e.by_grade, "grade"),
                              ("temperature", e.by_temperature, "temperature"),
                              ("stage", e.by_stage, "stage")):
        if frame.empty:
            continue
        console.print(f"{e.model} by {title}: " + ", ".join(
            f"{r[key]} {r['leads']:,} ({_pct(r['conversion_rate'])})"
            for _, r in frame.iterrows()), markup=False)
    if not e.rules.empty:
        rules = Table(title=f"{e.model}: rules (with vs without, "
                            f"{e.seconds.get('rules', 0):.1f} s)", title_justify="left")
        for name in ("rule", "kind", "leads", "converted with", "without", "lift"):
            rules.add_column(name, justify="left" if name in ("rule", "kind") else "right")
        for row in e.rules.itertuples():
            rules.add_row(str(row.rule), str(row.kind), f"{row.leads:,}",
                          _pct(row.conversion_with), _pct(row.conversion_without),
                          _ratio(row.lift))
        console.print(rules)


def _ratio(value: Any) -> str:
    return "-" if value is None or value != value else f"{float(value):.2f}"


# ----------------------------------------------------------------------------- charts

def charts(backtest: Backtest) -> dict[str, Any]:
    """Altair charts: cumulative gains, score distributions, per-rule lift."""
    import altair as alt

    gains = pd.concat([pd.concat([pd.DataFrame({"depth": [0.0], "gain": [0.0]}),
                                  e.gains[["depth", "gain"]]]).assign(model=e.model)
                       for e in backtest.evaluations])
    random = pd.DataFrame({"depth": [0.0, 1.0], "gain": [0.0, 1.0], "model": "random"})
    gains_chart = alt.Chart(pd.concat([gains, random])).mark_line(point=True).encode(
        x=alt.X("depth:Q", axis=alt.Axis(format="%"), title="leads contacted (by score)"),
        y=alt.Y("gain:Q", axis=alt.Axis(format="%"), title="conversions captured"),
        color="model:N").properties(title="Cumulative gains", width=420, height=300)
    frames = []
    for e in backtest.evaluations:
        scored = e.scores[~e.scores["disqualified"]]
        frames.append(scored.assign(model=e.model, outcome=scored["converted"].map(
            {1: "converted", 0: "did not convert"}))[["model", "score", "outcome"]])
    scores = pd.concat(frames)
    # A sample per model and outcome (the few converters keep theirs): altair embeds the rows
    # and refuses more than 5,000.
    each = max(100, 4_800 // max(1, 2 * len(frames)))
    order = scores.sample(frac=1.0, random_state=0)
    scores = order[order.groupby(["model", "outcome"]).cumcount() < each]
    distribution = alt.Chart(scores).transform_density(
        "score", groupby=["model", "outcome"], as_=["score", "density"]).mark_area(
        opacity=0.5).encode(x="score:Q", y="density:Q", color="outcome:N",
                            row="model:N").properties(
        title="Score distribution: converters vs not", width=420, height=160)
    rules = pd.concat([e.rules.assign(model=e.model) for e in backtest.evaluations
                       if not e.rules.empty]) if any(
        not e.rules.empty for e in backtest.evaluations) else pd.DataFrame()
    out = {"gains": gains_chart, "distribution": distribution}
    if not rules.empty:
        rules = rules[rules["leads"] > 0].fillna({"lift": 0.0})
        out["rule_lift"] = alt.Chart(rules).mark_bar().encode(
            x=alt.X("lift:Q", title="conversion with ÷ without"),
            y=alt.Y("rule:N", sort="-x"), color="model:N", row="model:N",
            tooltip=["rule", "leads", "conversion_with", "conversion_without"]).properties(
            title="Per-rule lift", width=360)
    return out


def write_html(backtest: Backtest, path: str | Path, *, png: bool = True) -> list[Path]:
    """Write the HTML report (charts inlined as SVG) and, with `png`, one PNG per chart
    beside it (`<stem>-gains.png`, …). Returns the files written."""
    import vl_convert as vlc

    target = Path(path)
    written = [target]
    sections = []
    for name, chart in charts(backtest).items():
        spec = chart.to_json()
        sections.append(f"<figure>{vlc.vegalite_to_svg(spec)}</figure>")
        if png:
            image = target.with_name(f"{target.stem}-{name}.png")
            image.write_bytes(vlc.vegalite_to_png(spec, scale=1.5))
            written.append(image)
    first = backtest.evaluations[0]
    parts = [f"<h1>Backtest as of {html.escape(first.as_of)}</h1>",
             f"<p>{first.leads:,} leads, {first.conversions:,} converted "
             f"({_pct(first.summary['conversion_rate'])}).</p>",
             *(f"<p class=note>{html.escape(n)}</p>" for n in backtest.notes),
             "<h2>Ranking (95 % bootstrap intervals)</h2>",
             _frame_html(backtest.comparison), *sections]
    for e in backtest.evaluations:
        parts.append(f"<h2>{html.escape(e.model)}</h2>")
        summary = {k: v for k, v in e.summary.items() if k != "intervals"}
        parts.append(_frame_html(pd.DataFrame([summary])))
        for title, frame in (("Lift and cumulative gains", e.gains),
                             ("Calibration of score bands", e.calibration),
                             ("By grade", e.by_grade), ("By temperature", e.by_temperature),
                             ("By stage", e.by_stage), ("Rules", e.rules)):
            if not frame.empty:
                parts.append(f"<h3>{title}</h3>{_frame_html(frame)}")
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;}"
             "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}.note{color:#a60}")
    target.write_text(f"<!doctype html><html><head><meta charset=utf-8><title>leadscore "
                      f"backtest</title><style>{style}</style></head><body>"
                      + "\n".join(parts) + "</body></html>", encoding="utf-8")
    return written


def _frame_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
