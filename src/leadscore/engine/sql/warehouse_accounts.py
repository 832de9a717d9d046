"""The account scores over a warehouse's own tables as one statement (`leadscore compile
--accounts-out`, `leadscore score --engine postgres --accounts`, the dbt package's
`account_scores_<model>`): the one account plan (`engine.sql.account_plan`) of each model with
an `account:` section, over that model's leads' scores computed inline by the same plan as
`compile_scores`', the leads table and the accounts table.

The accounts table has `account_id` and a column per trait (`domain` among them: leads link by
their e-mail's domain), as `score --account-traits` reads a file; with `--layout segment` the
stream stage's accounts (its group calls and identify `company` objects) take its place. The
statement's columns are the account scores' (`scores.ACCOUNT_COLUMNS`), the roles as arrays of
text, `as_of` a timestamp; sorted by model and account_id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from leadscore.engine.sql.account_plan import compile_account_plan
from leadscore.engine.sql.build import alias, col, table
from leadscore.engine.sql.dialects import Dialect
from leadscore.engine.sql.segment_tables import SegmentSchema, stream_relations
from leadscore.engine.sql.warehouse import (
    EVENTS,
    LEADS,
    VARCHAR,
    Source,
    model_plans,
    source_accounts,
    source_events,
    source_leads,
    with_ctes,
)
from leadscore.model.accounts import compile_account
from leadscore.model.schema import Model
from leadscore.scores import ACCOUNT_COLUMNS

ACCOUNTS, NO_LEADS = "source_accounts", "no_leads"


def account_models(models: Model | Sequence[Model]) -> list[Model]:
    """The models with an `account:` section, by name; a ValueError naming them if none."""
    model_list = [models] if isinstance(models, Model) else list(models)
    found = sorted((m for m in model_list if compile_account(m) is not None),
                   key=lambda m: m.name)
    if not found:
        names = ", ".join(m.name for m in model_list) or "(none)"
        raise ValueError(f"no model has an `account:` section ({names}): there are no "
                         "account scores to compile")
    return found


def compile_account_scores(models: Model | Sequence[Model], events: Source,
                           leads: Source | None, accounts: Source | None, *,
                           as_of_us: int | exp.Expr | None, dialect: str | Dialect = "duckdb",
                           create: str | None = None) -> exp.Expr:
    """One statement: every account under every model with an `account:` section, over the
    warehouse tables `events`, `leads` and `accounts` (None: no such table; the accounts are
    then those the leads' `account_id` names), as of `as_of_us` (as `compile_scores`);
    `create`: wrapped as `CREATE TABLE create AS …`."""
    speaking = Dialect.get_or_raise(dialect)
    events_query, events_types = source_events(events, speaking)
    ctes: list[tuple[str, exp.Expr]] = [(EVENTS, events_query)]
    leads_types = accounts_types = None
    if leads is not None:
        leads_query, leads_types = source_leads(leads)
        ctes.append((LEADS, leads_query))
    if accounts is not None:
        accounts_query, accounts_types = source_accounts(accounts)
        ctes.append((ACCOUNTS, accounts_query))
    return account_statement(models, ctes, EVENTS, events_types, LEADS, leads_types,
                             ACCOUNTS, accounts_types, as_of_us=as_of_us, dialect=speaking,
                             create=create)


def compile_segment_account_scores(models: Model | Sequence[Model], source: SegmentSchema,
                                   *, as_of_us: int | exp.Expr | None,
                                   dialect: str | Dialect = "duckdb",
                                   create: str | None = None) -> exp.Expr:
    """The account scores over the loader tables of `source` (`--layout segment`): the
    stream stage's leads (with the account each one's group call or identify `company`
    object names) and accounts (with their traits) in place of the tables."""
    speaking = Dialect.get_or_raise(dialect)
    chosen = account_models(models)
    ctes, names, columns = stream_relations(chosen, source, as_of_us, speaking)
    return account_statement(chosen, ctes, names.events, columns["events"], names.leads,
                             columns["leads"], names.accounts, columns["accounts"],
                             as_of_us=as_of_us, dialect=speaking, create=create)


def account_statement(models: Model | Sequence[Model], ctes: list[tuple[str, exp.Expr]],
                      events: str, events_types: Mapping[str, str], leads: str,
                      leads_types: Mapping[str, str] | None, accounts: str,
                      accounts_types: Mapping[str, str] | None, *,
                      as_of_us: int | exp.Expr | None, dialect: Dialect,
                      create: str | None = None) -> exp.Expr:
    """The statement: `ctes` (which make the canonical relations `events`, `leads` and
    `accounts`, the latter two absent where their types are None), each account model's
    lead plan and account plan over them, their union in the account scores' columns."""
    chosen = account_models(models)
    when: int | exp.Expr = dialect.now_us() if as_of_us is None else as_of_us
    plans, finals = model_plans(chosen, events, events_types, leads, leads_types, when,
                                dialect)
    ctes = [*ctes, *plans]
    if leads_types is None:     # no leads table: no lead links to an account
        ctes.append((NO_LEADS, exp.select(alias(exp.cast(exp.Null(), VARCHAR), "lead_id"))
                     .where(exp.false())))
        leads, leads_types = NO_LEADS, {"lead_id": VARCHAR}
    names = []
    for number, model in enumerate(chosen):
        plan = compile_account_plan(model, finals[model.name], leads, leads_types,
                                    accounts if accounts_types is not None else None,
                                    accounts_types or {}, when)
        plan.set("order", None)
        ctes.append((f"a{number}_accounts", plan))
        ctes.append((f"a{number}_final", _columns(model, f"a{number}_accounts", dialect)))
        names.append(f"a{number}_final")
    union: exp.Query = exp.select(exp.Star()).from_(table(names[0]))
    for name in names[1:]:
        union = exp.union(union, exp.select(exp.Star()).from_(table(name)), distinct=False)
    ctes.append(("account_scores", union))
    outputs = [alias(dialect.from_us(col(c)), c) if c == "as_of" else col(c)
               for c in ACCOUNT_COLUMNS]
    query = with_ctes(exp.select(*outputs).from_(table("account_scores")), ctes)
    query = query.order_by(col("model"), col("account_id"), copy=False)
    statement: exp.Expr = query
    if create is not None:
        statement = exp.Create(this=exp.to_table(create), kind="TABLE", expression=query)
    return dialect.finish(statement)


def _columns(model: Model, plan: str, dialect: Dialect) -> exp.Select:
    """The account plan's rows in the account scores' columns: its role flags `r0, r1, …`
    as the roles engaged and missing (arrays of text, in `want` order), as
    `engine.batch.schema.account_table` makes them from a runner's rows."""
    account = compile_account(model)
    assert account is not None
    flags = [(col(f"r{i}"), role) for i, (role, _) in enumerate(account.roles)]
    missing = [(exp.not_(flag.copy()), role) for flag, role in flags]
    made = {"roles_engaged": dialect.texts_where(flags),
            "roles_missing": dialect.texts_where(missing)}
    return exp.select(*(alias(made[c], c) if c in made else col(c) for c in ACCOUNT_COLUMNS)
                      ).from_(table(plan))
