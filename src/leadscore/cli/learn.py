"""`leadscore evaluate` and `leadscore learn`: backtest models against what converted, and
learn a points model from the data.

Heavy imports (scikit-learn, altair) happen inside the commands, so `leadscore --help` stays
fast and the rest of the CLI works without the `learn` extra.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli.console import clean_errors, err, fail, out, say
from leadscore.cli.outputs import output_path
from leadscore.cli.progress import progress_bar

EVENTS_HELP = "Events: .parquet, .csv or .jsonl (Segment messages)."
OUTCOMES_HELP = ("Outcomes: a file with lead_id and converted (0/1) and/or converted_at, or "
                 "event:<name> (e.g. 'event:Order Completed') to read them from the events.")
EVALUATE_OUTCOMES_HELP = (OUTCOMES_HELP + " Or buys-again: of the customers at the cut-off, "
                          "who buys again within --window-days, ranked by recency, frequency, "
                          "monetary value, tenure and each model's score.")

commands = typer.Typer()


@commands.command()
@clean_errors
def evaluate(
    model: Annotated[list[Path], typer.Option("--model", "-m", metavar="FILE", help="A model "
                                              "file; repeat to compare models side by side.")],
    events: Annotated[str, typer.Option("--events", "-e", metavar="FILE", help=EVENTS_HELP)],
    outcomes: Annotated[str, typer.Option("--outcomes", metavar="OUTCOMES",
                                          help=EVALUATE_OUTCOMES_HELP)],
    as_of: Annotated[str, typer.Option("--as-of", metavar="TIME", help="The cut-off (ISO "
                                       "8601): scores see only events up to it.")],
    leads: Annotated[str | None, typer.Option("--leads", "-l", metavar="FILE",
                                              help="Leads (traits).")] = None,
    window_days: Annotated[float | None, typer.Option(
        "--window-days", metavar="DAYS", help="Count conversions this many days after the "
        "cut-off; default: any time after it.")] = None,
    report: Annotated[Path | None, typer.Option(
        "--report", metavar="FILE", help="Write an HTML report with charts (and PNGs beside "
        "it).")] = None,
    no_rules: Annotated[bool, typer.Option("--no-rules", help="Skip the per-rule "
                                           "analysis (one batch run per rule).")] = False,
    replicates: Annotated[int, typer.Option("--bootstrap", metavar="N", help="Bootstrap "
                                            "replicates for the intervals.")] = 200,
    predictive: Annotated[bool, typer.Option(
        "--predictive", help="Also rank the same leads by a gradient-boosted model "
        "(LightGBM) trained on the window before the cut-off, shown next to the points "
        "models for comparison.")] = False,
) -> None:
    """Backtest models: how well their scores as of a cut-off rank who converted after."""
    from leadscore.learn.backtest import evaluate as run
    from leadscore.learn.repeat import BUYS_AGAIN, evaluate_repeat
    from leadscore.learn.report import show, write_html
    from leadscore.model import load_models

    models = load_models(list(model))
    if report is not None:
        report = output_path(report, "--report", (".html", ".htm"))
    started = time.monotonic()
    with progress_bar(err) as step:
        if outcomes == BUYS_AGAIN:
            backtest = evaluate_repeat(models, events, leads, as_of=as_of,
                                       within_days=window_days, replicates=replicates,
                                       step=step)
        else:
            backtest = run(models, events, leads, outcomes, as_of=as_of,
                           window_days=window_days, rules=not no_rules,
                           replicates=replicates, step=step, predictive=predictive)
        files = write_html(backtest, report) if report is not None else []
    show(backtest, out)
    for file in files:
        say(f"wrote {file}", "green", console=err)
    say(f"evaluated in {time.monotonic() - started:.1f} s", "green", console=err)


@commands.command()
@clean_errors
def learn(
    events: Annotated[str | None, typer.Option("--events", "-e", metavar="FILE",
                                               help=EVENTS_HELP + " Optional: leads may "
                                               "have traits only.")] = None,
    outcomes: Annotated[str | None, typer.Option("--outcomes", metavar="OUTCOMES",
                                                 help=OUTCOMES_HELP)] = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="Where to "
                                           "write the learned model (YAML).")
                        ] = Path("learned.yaml"),
    leads: Annotated[str | None, typer.Option("--leads", "-l", metavar="FILE",
                                              help="Leads (traits).")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", metavar="TIME", help="Training cut-off (ISO 8601). Dated outcomes: the "
        "test is one window later (default: two windows before the end of the data). "
        "Undated: every labelled lead as of it trains, cross-validation tests (default: the "
        "end of the data).")] = None,
    window_days: Annotated[float, typer.Option("--window-days", metavar="DAYS", help="Conversion "
                                               "window after a cut-off.")] = 30.0,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="Name of the learned "
                                      "model.")] = "learned",
    target_volume: Annotated[float | None, typer.Option(
        "--target-volume", metavar="SHARE", help="MQL threshold: this share of leads above "
        "it (default 0.2).")] = None,
    target_precision: Annotated[float | None, typer.Option(
        "--target-precision", metavar="SHARE", help="MQL threshold: the lowest score at "
        "which this share of leads converts.")] = None,
    pdo: Annotated[float, typer.Option("--pdo", metavar="POINTS", help="Points to double "
                                       "the odds.")] = 20.0,
    min_conversions: Annotated[int, typer.Option("--min-conversions", metavar="N",
                                                 help="Refuse to learn from fewer.")] = 50,
    max_rules: Annotated[int, typer.Option("--max-rules", metavar="N", help="At most this "
                                           "many rules (a trait's bands are one rule).")
                         ] = 25,
    predictive: Annotated[bool, typer.Option(
        "--predictive", help="Also fit a gradient-boosted model (LightGBM) on the same "
        "features and show it next to the points model.")] = False,
) -> None:
    """Learn a points model from leads, events and outcomes, written as a model YAML."""
    from leadscore.learn.scorecard import learn as run

    if outcomes is None:
        fail("error: --outcomes is needed: a file with lead_id and converted / "
             "converted_at, or event:<name>")
    if events is None and leads is None:
        fail("error: give --events, --leads or both")
    out_path = output_path(out_path, "--out", (".yaml", ".yml"))
    volume = target_volume if target_volume is not None or target_precision is not None \
        else 0.2
    started = time.monotonic()
    with progress_bar(err) as step:
        learned = run(events, leads, outcomes, as_of=as_of, window_days=window_days,
                      target_volume=volume, target_precision=target_precision, pdo=pdo,
                      name=name, min_conversions=min_conversions, max_rules=max_rules,
                      step=step)
        extra = None
        if predictive:
            from leadscore.learn.predictive import fit_predictive

            step("fitting the predictive model", 0.9)
            extra = fit_predictive(learned)
    out_path.write_text(learned.yaml, encoding="utf-8")
    for warning in learned.warnings:
        say(f"warning: {warning}", "yellow")
    kept = learned.rules[learned.rules["kept"]]
    fit = kept[kept["kind"] == "fit"]
    say(f"learned {kept['group'].nunique()} rules ({fit['group'].nunique()} fit with "
        f"{(fit['points'] != 0).sum()} bands, {(kept['kind'] == 'engagement').sum()} "
        f"engagement); half-life {learned.half_life_days or 'none'} days", "bold")
    t = learned.test
    say(f"test ({t['split']}, cut-off {t['cut_off']}, {t['leads']:,} leads, "
        f"{t['conversions']:,} converted): AUC {t['auc']:.3f}, top 10/20/30 % capture "
        f"{t['capture_10']:.1%} / {t['capture_20']:.1%} / {t['capture_30']:.1%}")
    if extra is not None:
        say(f"predictive (LightGBM, same features, same test): AUC {extra.test['auc']:.3f}, "
            f"top 20 % capture {extra.test['capture_20']:.1%} — shown for comparison; "
            "the points model above is what was written")
    say(f"wrote {out_path} in {time.monotonic() - started:.1f} s", "green")
