"""Stage `ev`: the events at or before as_of, the columns the later stages read, and per event
the flags of every engagement and lifecycle `on` rule (bit masks, `engine.sql.signatures`),
the points or stage of program events (`pts`, `pst`) and, with a hash lead key, that key `k`."""

from __future__ import annotations

from sqlglot import exp

from leadscore.engine.sql.build import alias, case, col, instant, or_, table
from leadscore.engine.sql.plan.scope import Scope
from leadscore.engine.sql.purchases import purchase_value
from leadscore.engine.sql.semantics import match_column
from leadscore.model.compiled import CUSTOMER_RANK


def events(scope: Scope) -> exp.Select:
    compiled, signatures = scope.compiled, scope.signatures
    ts = col("ts")
    flags: list[exp.Expr] = signatures.staged()
    if scope.program_points is not None:
        flags.append(alias(scope.program_points, "pts"))
    if scope.program_stage is not None:
        flags.append(alias(scope.program_stage, "pst"))
    needed = {"lead_id", "ts"}
    if any(s.matcher and s.rank == CUSTOMER_RANK for s in compiled.stages):
        # a purchase's value (monetary), from properties
        needed.update(c.name for c in purchase_value(scope.events_columns).find_all(exp.Column))
    # A `distinct` value is staged only on the events of the rules that read it (strings cost
    # most of the staged table; most events match no such rule).
    distinct_of: dict[str, list[str]] = {}
    for rule in compiled.rules:
        if rule.distinct is not None and rule.distinct in scope.events_columns \
                and rule.distinct not in needed:
            distinct_of.setdefault(rule.distinct, []).append(match_column(rule.index))
    staged = [col(c) for c in sorted(needed)] + [
        alias(case([(or_(*(signatures.flag(name, inline=True) for name in names)), col(c))]), c)
        for c, names in sorted(distinct_of.items())]
    key = scope.lead_key(col("lead_id"))
    events_table = scope.options.events_table
    until = exp.LTE(this=ts.copy(), expression=instant(scope.as_of_us))
    ev = exp.select(*staged, *([alias(key, "k")] if key else []),
                    *flags).from_(table(events_table))
    if signatures.matchers:
        ev = signatures.join(ev, table(events_table), until)
    return ev.where(until)
