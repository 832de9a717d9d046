"""Account scoring in the batch engine: one query per model over the leads' scores, the leads
table and the accounts table (sqlglot expressions, portable like the scoring plan).

    dom      account `domain` (lower-cased, trimmed, free-mail left out) → the smallest id
    links    each lead of the leads table → its account: `account_id` trait, else e-mail domain
    members  links × the model's scores (engagement, disqualified) with one flag per role
    agg      per account: leads, engaged leads, roll-up, roles engaged, match kinds
    final    every account (accounts table ∪ ids named by leads): fit, score, mqa
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute
from sqlglot import exp

from leadscore.engine.compiler import _as, _case, _coalesce, _double, _sum_of, _table, col
from leadscore.engine.sqlconditions import STRING, and_, column_kind, number, or_, text, to_sql
from leadscore.model.accounts import FREE_MAIL_DOMAINS, CompiledAccount, compile_account
from leadscore.model.schema import Model

ACCOUNT_SCHEMA = pa.schema([
    ("account_id", pa.string()), ("model", pa.string()), ("fit", pa.float64()),
    ("engagement", pa.float64()), ("score", pa.float64()), ("disqualified", pa.bool_()),
    ("disqualify_reason", pa.string()), ("roles_engaged", pa.list_(pa.string())),
    ("roles_missing", pa.list_(pa.string())), ("mqa", pa.bool_()), ("leads", pa.int64()),
    ("engaged_leads", pa.int64()), ("leads_by_group", pa.int64()),
    ("leads_by_account_id", pa.int64()), ("leads_by_domain", pa.int64()),
    ("as_of", pa.timestamp("us", tz="UTC")),
])
LINK_SCHEMA = pa.schema([("lead_id", pa.string()), ("account_id", pa.string()),
                         ("account_match", pa.string())])

ZERO = _double(exp.Literal.number(0))


def _varchar(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.Type.VARCHAR)


def _not_null(expression: exp.Expr) -> exp.Expr:
    return exp.not_(exp.Is(this=expression, expression=exp.Null()))


def _text_or_null(column: str, columns: Mapping[str, str], table: str | None = None
                  ) -> exp.Expr:
    if column not in columns:
        return _varchar(exp.Null())
    return _varchar(col(column, table))


def links_query(leads_table: str, lead_columns: Mapping[str, str], accounts_table: str | None,
                account_columns: Mapping[str, str]) -> exp.Select:
    """`lead_id, account_id, account_match` for every lead of the leads table with an
    account (`account_id` trait first, then e-mail domain; see `model.accounts`)."""
    explicit = _text_or_null("traits.account_id", lead_columns, "l")
    explicit = _case([(and_(_not_null(explicit), exp.NEQ(this=explicit.copy(),
                                                         expression=text(""))),
                       explicit.copy())], _varchar(exp.Null()))
    query: exp.Select
    if accounts_table is not None and "account.domain" in account_columns and column_kind(
            account_columns["account.domain"]) == STRING:
        domain = exp.Lower(this=exp.Trim(this=col("account.domain")))
        dom = exp.select(_as(domain, "domain"), _as(exp.Min(this=col("account_id")),
                                                    "account_id")) \
            .from_(_table(accounts_table)) \
            .where(and_(_not_null(col("account.domain")),
                        exp.NEQ(this=domain.copy(), expression=text("")),
                        exp.not_(exp.In(this=domain.copy(), expressions=[
                            text(d) for d in sorted(FREE_MAIL_DOMAINS)])))) \
            .group_by(domain.copy())
        email = col("traits.email", "l")
        if "traits.email" in lead_columns and column_kind(lead_columns["traits.email"]) \
                == STRING:
            email_domain: exp.Expr = _case([(exp.Like(this=email, expression=text("%@%")),
                                             exp.Lower(this=exp.Trim(this=exp.RegexpExtract(
                                                 this=email.copy(),
                                                 expression=text("@([^@]*)$"),
                                                 group=exp.Literal.number(1)))))],
                                           _varchar(exp.Null()))
        else:
            email_domain = _varchar(exp.Null())
        query = exp.select(
            col("lead_id", "l"),
            _as(_coalesce(explicit, col("account_id", "d")), "account_id"),
            _as(_case([(_not_null(explicit.copy()), text("account_id")),
                       (_not_null(col("account_id", "d")), text("domain"))],
                      _varchar(exp.Null())), "account_match"),
        ).from_(_table(leads_table, "l")).join(
            dom.subquery("d", copy=False), join_type="LEFT",
            on=exp.EQ(this=col("domain", "d"), expression=email_domain))
    else:
        query = exp.select(col("lead_id", "l"), _as(explicit, "account_id"),
                           _as(_case([(_not_null(explicit.copy()), text("account_id"))],
                                     _varchar(exp.Null())), "account_match")) \
            .from_(_table(leads_table, "l"))
    return exp.select(exp.Star()).from_(query.subquery("k", copy=False)) \
        .where(_not_null(col("account_id")))


def compile_account_plan(model: Model, scores_table: str, leads_table: str,
                         lead_columns: Mapping[str, str], accounts_table: str | None,
                         account_columns: Mapping[str, str], as_of_us: int) -> exp.Select:
    """One row per account under `model`; roles as flags `r0, r1, …` (in `want` order)."""
    account = compile_account(model)
    assert account is not None
    links = links_query(leads_table, lead_columns, accounts_table, account_columns)
    role_flags = [_as(to_sql(condition, lead_columns, table="l"), f"r{i}")
                  for i, (_, condition) in enumerate(account.roles)]
    links_with_roles = exp.select(col("lead_id", "k"), col("account_id", "k"),
                                  col("account_match", "k"), *role_flags) \
        .from_(links.subquery("k", copy=False)) \
        .join(_table(leads_table, "l"),
              on=exp.EQ(this=col("lead_id", "l"), expression=col("lead_id", "k")))
    rank = exp.Window(this=exp.RowNumber(),
                      partition_by=[col("account_id", "m"), col("disqualified", "s")],
                      order=exp.Order(expressions=[
                          exp.Ordered(this=col("engagement", "s"), desc=True),
                          exp.Ordered(this=col("lead_id", "m"))]))
    members = exp.select(col("lead_id", "m"), col("account_id", "m"), col("account_match", "m"),
                         *(col(f"r{i}", "m") for i in range(len(account.roles))),
                         col("engagement", "s"), col("disqualified", "s"), _as(rank, "n")) \
        .from_(links_with_roles.subquery("m", copy=False)) \
        .join(_table(scores_table, "s"),
              on=exp.EQ(this=col("lead_id", "s"), expression=col("lead_id", "m")))
    counted = exp.not_(col("disqualified"))
    engaged = and_(counted.copy(), exp.GT(this=col("engagement"), expression=ZERO.copy()))

    def count_if(condition: exp.Expr, name: str) -> exp.Expr:
        return _as(exp.Sum(this=_case([(condition, exp.Literal.number(1))],
                                      exp.Literal.number(0))), name)

    value = _case([(counted.copy(), col("engagement"))], _double(exp.Null()))
    if account.rollup == "max":
        rolled: exp.Expr = exp.Max(this=value)
    elif account.rollup == "top3_mean":
        rolled = exp.Avg(this=_case([(and_(counted.copy(), exp.LTE(
            this=col("n"), expression=exp.Literal.number(3))), col("engagement"))],
            _double(exp.Null())))
    else:
        rolled = exp.Sum(this=value)
    agg = exp.select(
        col("account_id"), _as(exp.Count(this=exp.Star()), "leads"),
        count_if(engaged, "engaged_leads"), _as(rolled, "rolled"),
        count_if(exp.EQ(this=col("account_match"), expression=text("account_id")),
                 "by_account_id"),
        count_if(exp.EQ(this=col("account_match"), expression=text("domain")), "by_domain"),
        *(count_if(and_(engaged.copy(), col(f"r{i}")), f"r{i}")
          for i in range(len(account.roles))),
    ).from_(members.subquery("x", copy=False)).group_by(col("account_id"))
    ids: exp.Query = exp.select(col("account_id")).from_(links.copy().subquery("k2"))
    if accounts_table is not None:
        ids = exp.union(exp.select(col("account_id")).from_(_table(accounts_table)), ids,
                        distinct=True)
    people = exp.select(_as(col("account_id", "i"), "account_id"),
                        *(col(c, "t") for c in account_columns if c != "account_id"),
                        *(col(c, "g") for c in ("leads", "engaged_leads", "rolled",
                                                "by_account_id", "by_domain")),
                        *(col(f"r{i}", "g") for i in range(len(account.roles))))
    people = people.from_(exp.select(col("account_id")).distinct().from_(ids.subquery("u"))
                          .subquery("i", copy=False))
    if accounts_table is not None:
        people = people.join(_table(accounts_table, "t"), join_type="LEFT",
                             on=exp.EQ(this=col("account_id", "t"),
                                       expression=col("account_id", "i")))
    people = people.join(agg.subquery("g", copy=False), join_type="LEFT",
                         on=exp.EQ(this=col("account_id", "g"), expression=col("account_id", "i")))
    return _final(model.name, account, people, account_columns, as_of_us)


def _final(name: str, account: CompiledAccount, people: exp.Select,
           account_columns: Mapping[str, str], as_of_us: int) -> exp.Select:
    fit_terms: list[exp.Expr] = []
    disqualify: list[tuple[exp.Expr, exp.Expr]] = []
    for rule in account.fit:
        if rule.bands:
            whens = [(to_sql(band, account_columns), _double(number(points)))
                     for band, points in rule.bands]
            fit_terms.append(_case(whens, ZERO.copy()))
            matched: exp.Expr = or_(*(w.copy() for w, _ in whens))
        else:
            assert rule.when is not None
            matched = to_sql(rule.when, account_columns)
            fit_terms.append(_case([(matched, _double(number(rule.points)))], ZERO.copy()))
        if rule.disqualify is not None:
            disqualify.append((matched.copy(), text(rule.disqualify)))
    fit = _sum_of(fit_terms) if fit_terms else ZERO.copy()
    reason = _case(disqualify) if disqualify else _varchar(exp.Null())
    engagement = _coalesce(col("rolled"), ZERO.copy())
    scored = exp.select(
        col("account_id"), _as(_double(fit), "fit"), _as(_double(engagement), "engagement"),
        _as(reason, "disqualify_reason"),
        *(_as(exp.cast(_coalesce(col(c), exp.Literal.number(0)), exp.DataType.Type.BIGINT), c)
          for c in ("leads", "engaged_leads", "by_account_id", "by_domain")),
        *(_as(exp.GT(this=_coalesce(col(f"r{i}"), exp.Literal.number(0)),
                     expression=exp.Literal.number(0)), f"r{i}")
          for i in range(len(account.roles))),
    ).from_(people.subquery("p", copy=False))
    total = exp.Add(this=col("fit"), expression=col("engagement"))
    mqa: exp.Expr = exp.false()
    if account.mqa is not None:
        mqa = and_(exp.Is(this=col("disqualify_reason"), expression=exp.Null()),
                   exp.GTE(this=exp.Paren(this=total.copy()),
                           expression=_double(number(account.mqa))))
    return exp.select(
        col("account_id"), _as(text(name), "model"), col("fit"), col("engagement"),
        _as(_double(total), "score"), _as(_not_null(col("disqualify_reason")), "disqualified"),
        col("disqualify_reason"), *(col(f"r{i}") for i in range(len(account.roles))),
        _as(mqa, "mqa"), col("leads"), col("engaged_leads"),
        _as(exp.cast(exp.Literal.number(0), exp.DataType.Type.BIGINT), "leads_by_group"),
        _as(col("by_account_id"), "leads_by_account_id"), _as(col("by_domain"),
                                                              "leads_by_domain"),
        _as(exp.cast(exp.Literal.number(as_of_us), exp.DataType.Type.BIGINT), "as_of"),
    ).from_(scored.subquery("f", copy=False)).order_by(col("account_id"))


# ----------------------------------------------------------------------------- DuckDB

def read_accounts(source: Any, con: Any, name: str) -> dict[str, str]:
    """Stage an accounts table (`account_id` + one column per trait; a column may be named
    `account.<x>` or `traits.<x>` too) as `name` with columns `account_id, account.<x>`;
    return its columns and SQL types. Accepts a path (.csv, .parquet, .jsonl), an Arrow table,
    a pandas/polars frame, or the name of a table in `con`."""
    if isinstance(source, str | os.PathLike) and os.path.exists(source):
        path = str(source).replace("'", "''")
        reader = "read_parquet" if path.endswith(".parquet") else (
            "read_json_auto" if path.endswith((".jsonl", ".ndjson", ".json")) else
            "read_csv_auto")
        raw = con.sql(f"SELECT * FROM {reader}('{path}')")
    elif isinstance(source, str):
        raw = con.sql(f'SELECT * FROM "{source}"')
    else:
        table = source if isinstance(source, pa.Table) else pa.Table.from_pandas(source) \
            if hasattr(source, "to_dict") else pa.table(source)
        raw = con.from_arrow(table)
    if "account_id" not in raw.columns:
        from leadscore.errors import InputError

        raise InputError(f"accounts: no account_id column (columns: {', '.join(raw.columns)})")
    view = f"__accounts_src_{name}"
    con.register(view, raw.to_arrow_table())
    selects = ['CAST("account_id" AS VARCHAR) AS "account_id"']
    for column in raw.columns:
        if column == "account_id":
            continue
        trait = column.removeprefix("account.").removeprefix("traits.")
        selects.append(f'"{column}" AS "account.{trait}"')
    con.sql(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT {", ".join(selects)} FROM "{view}" '
            'WHERE "account_id" IS NOT NULL')
    con.unregister(view)
    rel = con.sql(f'SELECT * FROM "{name}" LIMIT 0')
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def run_accounts(con: Any, model: Model, scores: pa.Table, leads_table: str | None,
                 lead_columns: Mapping[str, str], accounts_table: str | None,
                 account_columns: Mapping[str, str], as_of_us: int) -> pa.Table:
    """The accounts of one model (ACCOUNT_SCHEMA) on DuckDB."""
    account = compile_account(model)
    if account is None or (leads_table is None and accounts_table is None):
        return ACCOUNT_SCHEMA.empty_table()
    scores_name = f"__account_scores_{abs(hash((model.name, as_of_us)))}"
    con.register(scores_name, scores.select(["lead_id", "engagement", "disqualified"]))
    try:
        if leads_table is None:
            con.sql('CREATE OR REPLACE TEMP TABLE "__no_leads" AS SELECT CAST(NULL AS VARCHAR) '
                    'AS lead_id WHERE FALSE')
            leads_table, lead_columns = "__no_leads", {"lead_id": "VARCHAR"}
        plan = compile_account_plan(model, scores_name, leads_table, lead_columns,
                                    accounts_table, account_columns, as_of_us)
        result = con.sql(plan.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.unregister(scores_name)
    return account_table(account, result)


def account_table(account: CompiledAccount, result: pa.Table) -> pa.Table:
    """The account plan's rows (any engine) in ACCOUNT_SCHEMA: role flags as lists."""
    wanted = [role for role, _ in account.roles]
    flags = [result.column(f"r{i}").to_pylist() for i in range(len(wanted))]
    engaged = [[r for r, f in zip(wanted, row, strict=True) if f] for row in zip(*flags,
                                                                              strict=True)] \
        if wanted else [[] for _ in range(result.num_rows)]
    missing = [[r for r in wanted if r not in e] for e in engaged]
    columns = []
    for field in ACCOUNT_SCHEMA:
        if field.name == "roles_engaged":
            columns.append(pa.array(engaged, field.type))
        elif field.name == "roles_missing":
            columns.append(pa.array(missing, field.type))
        elif pa.types.is_timestamp(field.type):
            columns.append(result.column(field.name).cast(pa.int64()).cast(field.type))
        else:
            columns.append(result.column(field.name).cast(field.type))
    return pa.Table.from_arrays(columns, schema=ACCOUNT_SCHEMA)


def run_links(con: Any, leads_table: str, lead_columns: Mapping[str, str],
              accounts_table: str | None, account_columns: Mapping[str, str]) -> pa.Table:
    """`lead_id, account_id, account_match` of every lead with an account (DuckDB)."""
    query = links_query(leads_table, lead_columns, accounts_table, account_columns)
    return link_table(con.sql(query.sql(dialect="duckdb")).to_arrow_table())


def link_table(result: pa.Table) -> pa.Table:
    """The links query's rows (any engine) in LINK_SCHEMA."""
    return pa.Table.from_arrays([result.column(f.name).cast(f.type) for f in LINK_SCHEMA],
                                schema=LINK_SCHEMA)


def score_accounts(models: Model | list[Model], events: Any, leads: Any = None,
                   accounts: Any = None, *, as_of: Any = None, con: Any = None,
                   scores: pa.Table | None = None, engine: str = "duckdb",
                   spark: Any = None) -> pa.Table:
    """Every account under every model with an `account:` section, at `as_of` (default now).

    `accounts`: a table with `account_id` and trait columns (incl. `domain`). Accounts are
    those of the table and those a lead's `account_id` names. `scores`: the leads' scores of
    `score_many` at the same `as_of`, where already computed. One row per account and model
    (ACCOUNT_SCHEMA), sorted by model then account_id. `engine="spark"` runs the same plan
    on Spark (`engine.spark_accounts`; `spark`: a SparkSession).
    """
    from leadscore.engine import batch

    model_list = [models] if isinstance(models, Model) else list(models)
    as_of_us = batch._as_of_us(as_of)
    if engine == "spark":
        from leadscore.engine import spark as on_spark
        from leadscore.engine.spark_accounts import score_accounts as on_spark_accounts

        return on_spark_accounts(model_list, events, leads, accounts, as_of_us=as_of_us,
                                 spark=spark if spark is not None else on_spark.session(),
                                 scores=scores)
    own = con is None
    connection = batch.connect() if con is None else con
    try:
        events_name = batch._input(events, connection, "events")
        leads_name = batch._input(leads, connection, "leads") if leads is not None else None
        lead_columns = batch._table_columns(connection, leads_name) if leads_name else {}
        accounts_name, account_columns = None, {}
        if accounts is not None:
            accounts_name = f"__accounts_{abs(hash((id(accounts), as_of_us)))}"
            account_columns = read_accounts(accounts, connection, accounts_name)
        if scores is None:
            scores = batch.score_many(model_list, events_name, leads_name, as_of=as_of_us,
                                      con=connection)
        tables = []
        for model in sorted(model_list, key=lambda m: m.name):
            if compile_account(model) is None:
                continue
            mine = scores.filter(pa.compute.equal(scores.column("model"), model.name))
            tables.append(run_accounts(connection, model, mine, leads_name, lead_columns,
                                       accounts_name, account_columns, as_of_us))
        return pa.concat_tables(tables) if tables else ACCOUNT_SCHEMA.empty_table()
    finally:
        if own:
            connection.close()


def with_account_links(con: Any, scores: pa.Table, leads_table: str | None,
                       accounts: Any) -> pa.Table:
    """`scores` with each lead's `account_id` and `account_match` (account_id | domain)."""
    account_columns: dict[str, str] = {}
    accounts_name = f"__accounts_links_{abs(hash((id(accounts), id(scores))))}"
    account_columns = read_accounts(accounts, con, accounts_name)
    found: dict[str, tuple[str, str]] = {}
    if leads_table is not None:
        rel = con.sql(f'SELECT * FROM "{leads_table}" LIMIT 0')
        lead_columns = {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}
        links = run_links(con, leads_table, lead_columns, accounts_name, account_columns)
        found = {lead: (account, kind) for lead, account, kind in zip(
            *(links.column(c).to_pylist() for c in LINK_SCHEMA.names), strict=True)}
    return append_links(scores, found)


def append_links(scores: pa.Table, found: dict[str, tuple[str, str]]) -> pa.Table:
    """`scores` with `account_id` and `account_match` from lead_id → (account, kind)."""
    lead_ids = scores.column("lead_id").to_pylist()
    pairs = [found.get(lead_id, (None, None)) for lead_id in lead_ids]
    scores = scores.append_column(pa.field("account_id", pa.string()),
                                  pa.array([p[0] for p in pairs], pa.string()))
    return scores.append_column(pa.field("account_match", pa.string()),
                                pa.array([p[1] for p in pairs], pa.string()))
