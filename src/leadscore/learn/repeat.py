"""Backtest repeat purchase: of the customers as of a cut-off, who buys again within N days?

Outcomes `buys-again` (`leadscore evaluate --outcomes buys-again --window-days N`): the
population is every customer of the first model at the cut-off (a lead with a purchase, as in
the scores output: `frequency` not null); a customer "converts" when it makes another purchase
(an event matching a `customer` lifecycle rule's `on`) in the N days after the cut-off. The
customers are ranked by each customer-lifecycle field (`recency_days`, most recent first;
`frequency`; `monetary`; `tenure_days`) and by each model's score, all with the same metrics,
intervals and paired differences as `evaluate`. Nothing after the cut-off is scored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from leadscore.engine.batch import connect, score_many
from leadscore.engine.batch.inputs import canonical_inputs, table_columns
from leadscore.engine.sql.purchases import purchase_sql
from leadscore.errors import InputError
from leadscore.io.sqltext import quote
from leadscore.learn.backtest import Backtest, compare, evaluation
from leadscore.learn.inputs import END_OF_TIME, Step, When, as_of_us, quiet
from leadscore.model.schema import Model
from leadscore.timeutil import US_PER_DAY, iso, now_us

BUYS_AGAIN = "buys-again"
# name, column, sign (rank by sign × value; recency: fewer days is better)
FIELDS = (("recency (most recent first)", "recency_days", -1.0), ("frequency", "frequency", 1.0),
          ("monetary", "monetary", 1.0), ("tenure", "tenure_days", 1.0))


def evaluate_repeat(models: Model | Sequence[Model], events: Any, leads: Any = None, *,
                    as_of: When = None, within_days: float | None = None,
                    replicates: int = 200, seed: int = 0, step: Step = quiet) -> Backtest:
    """Backtest "buys again within `within_days`" among the customers as of `as_of`."""
    model_list = [models] if isinstance(models, Model) else list(models)
    if not within_days or within_days <= 0:
        raise InputError("buys-again needs --window-days N: how many days after the cut-off "
                         "a repeat purchase counts")
    con = connect()
    step("reading events", 0.0)
    cut = as_of_us(as_of, now_us())
    # the purchases after the cut-off by the leads as finally known; scored as of the cut
    final = canonical_inputs(events, leads, con, END_OF_TIME)
    at_cut = canonical_inputs(events, leads, con, cut) if final.stream else final
    con.sql(f"CREATE OR REPLACE TEMP TABLE ls_events_t AS SELECT * FROM {quote(final.events)}")
    end = cut + int(within_days * US_PER_DAY)
    first = model_list[0]
    hit = purchase_sql(first, table_columns(con, "ls_events_t"))
    frames = {}
    for i, model in enumerate(model_list):
        step(f"scoring {model.name} as of {iso(cut)}", 0.2 + 0.6 * i / len(model_list))
        frames[model.name] = score_many(model, at_cut.events, at_cut.leads, as_of=cut,
                                        con=con).to_pandas().set_index("lead_id")
    customers = frames[first.name]
    customers = customers[customers["frequency"].notna()].sort_index()
    if customers.empty:
        raise InputError(f"model {first.name!r} has no customer at {iso(cut)}: buys-again needs "
                         "a `customer` lifecycle rule with `on` and purchases before the cut-off")
    again = {r[0] for r in con.sql(f"SELECT DISTINCT lead_id FROM ls_events_t WHERE ts > {cut} "
                                   f"AND ts <= {end} AND ({hit})").fetchall()}
    base = customers[["disqualified"]].assign(
        converted=np.fromiter((i in again for i in customers.index), dtype=float,
                              count=len(customers)), mql=False)
    started = time.perf_counter()
    evaluations = []
    for model in model_list:
        score = frames[model.name]["score"].reindex(customers.index).fillna(0.0)
        evaluations.append(evaluation(None, base.assign(score=score).reset_index(), cut,
                                       within_days, _empty(), {}, name=f"score: {model.name}"))
    for name, column, sign in FIELDS:
        values = customers[column].astype(float).to_numpy() * sign
        plain = base.assign(score=values, disqualified=False)   # a field ranks by itself only
        evaluations.append(evaluation(None, plain.reset_index(), cut,
                                       within_days, _empty(),
                                       {"score": time.perf_counter() - started}, name=name))
    notes = [f"outcome: bought again within {within_days:g} days after the cut-off, among the "
             f"{len(customers):,} customers of {first.name} at the cut-off (purchases: its "
             "customer lifecycle rules); recency ranks the most recent buyers first"]
    step("bootstrapping confidence intervals", 0.9)
    return compare(evaluations, notes, replicates=replicates, seed=seed)


def _empty() -> Any:
    import pandas as pd

    return pd.DataFrame()
