"""What every stage of one scoring plan reads: the model, the inputs' columns, `as_of` and the
options, with what is derived from them once (the rule kinds, the signatures of `ev`, the
program events' SQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from leadscore.engine.sql.build import or_
from leadscore.engine.sql.dialects import Dialect
from leadscore.engine.sql.program_events import points_sql, stage_sql
from leadscore.engine.sql.semantics import RuleKinds, exact_type, match_column, stage_column
from leadscore.engine.sql.signatures import Signatures
from leadscore.model.compiled import CompiledModel, EngagementRule, StageRule, compile_model
from leadscore.model.schema import Model


@dataclass(frozen=True)
class PlanOptions:
    """Choices that change speed, never results."""

    events_table: str = "events"
    leads_table: str | None = "leads"
    dialect: str = "duckdb"
    # "hash": the bucket GROUP BY keys leads by a 64-bit hash of lead_id (an integer groups
    # faster than a string), and the plan outputs that hash as a column `k` so that the caller
    # checks it is unique over the leads (and runs the plan again with "lead_id" if not).
    lead_key: str = "lead_id"
    # False: no ORDER BY in the plan (the caller sorts the small result itself).
    order: bool = True
    # True: also output each rule's contribution (`rule_column`), so that one run tells which
    # leads every rule fired for (evaluate's per-rule analysis).
    rule_columns: bool = False


@dataclass(frozen=True)
class Scope:
    """One plan's inputs: `leads_table` is None without leads columns; `lead_columns` are the
    leads table's columns ({} without one)."""

    compiled: CompiledModel
    events_columns: Mapping[str, str]
    lead_columns: dict[str, str]
    leads_table: str | None
    # µs; an expression (the warehouse's current time) in a plan compiled without --as-of
    as_of_us: int | exp.Expr
    options: PlanOptions
    dialect: Dialect
    kinds: RuleKinds
    # ev's flags: every engagement rule and lifecycle `on` rule, as bit masks
    signatures: Signatures
    # the points / stage rank a program event gives (columns `pts` / `pst` of ev), or None
    program_points: exp.Expr | None
    program_stage: exp.Expr | None
    # the DECIMAL type points are summed in
    exact: exp.DataType

    @classmethod
    def of(cls, model: Model | CompiledModel, events_columns: Mapping[str, str],
           leads_columns: Mapping[str, str] | None, as_of_us: int | exp.Expr,
           options: PlanOptions | None = None) -> Scope:
        opts = options or PlanOptions()
        compiled = model if isinstance(model, CompiledModel) else compile_model(model)
        signatures = Signatures(
            [*((match_column(r.index), r.matcher) for r in compiled.rules),
             *((stage_column(s.index), s.matcher) for s in compiled.stages if s.matcher)],
            events_columns)
        return cls(compiled=compiled, events_columns=events_columns,
                   lead_columns=dict(leads_columns or {}),
                   leads_table=opts.leads_table if leads_columns is not None else None,
                   as_of_us=as_of_us, options=opts, dialect=Dialect.get_or_raise(opts.dialect),
                   kinds=RuleKinds.of(compiled), signatures=signatures,
                   program_points=points_sql(events_columns, compiled.name),
                   program_stage=stage_sql(events_columns, compiled.name),
                   exact=exact_type(r.points for r in compiled.rules))

    def flag(self, rule: EngagementRule) -> exp.Expr:
        """Whether an event of ev matches engagement rule `rule`."""
        return self.signatures.flag(match_column(rule.index))

    def stage_flag(self, stage: StageRule) -> exp.Expr:
        """Whether an event of ev matches lifecycle rule `stage`."""
        return self.signatures.flag(stage_column(stage.index))

    def stage_hit(self, stages: Sequence[StageRule]) -> exp.Expr:
        return or_(*(self.stage_flag(s) for s in stages))

    def lead_key(self, lead_id: exp.Expr) -> exp.Expr | None:
        """The lead key of the bucket GROUP BY: None means lead_id itself."""
        if self.options.lead_key == "lead_id":
            return None
        if self.options.lead_key != "hash":
            raise ValueError(f"lead_key {self.options.lead_key!r}: expected 'lead_id' or 'hash'")
        return self.dialect.hash64(lead_id)
