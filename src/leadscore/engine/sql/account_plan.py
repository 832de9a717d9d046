"""Account scoring as SQL: one query per model over the leads' scores, the leads table and the
accounts table (sqlglot expressions, portable like the scoring plan).

    dom      account `domain` (lower-cased, trimmed, free-mail left out) → the smallest id
    links    each lead of the leads table → its account: `account_id` trait, else e-mail domain
    members  links × the model's scores (engagement, disqualified) with one flag per role
    agg      per account: leads, engaged leads, roll-up, roles engaged, match kinds
    final    every account (accounts table ∪ ids named by leads): fit, score, mqa
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from leadscore.engine.sql.build import (
    alias,
    and_,
    case,
    coalesce,
    col,
    double,
    number,
    or_,
    sum_of,
    table,
    text,
)
from leadscore.engine.sql.conditions import STRING, column_kind, to_sql
from leadscore.model.accounts import FREE_MAIL_DOMAINS, CompiledAccount, compile_account
from leadscore.model.schema import Model

ZERO = double(exp.Literal.number(0))


def _varchar(expression: exp.Expr) -> exp.Expr:
    return exp.cast(expression, exp.DataType.Type.VARCHAR)


def _not_null(expression: exp.Expr) -> exp.Expr:
    return exp.not_(exp.Is(this=expression, expression=exp.Null()))


def _text_or_null(column: str, columns: Mapping[str, str], table: str | None = None
                  ) -> exp.Expr:
    if column not in columns:
        return _varchar(exp.Null())
    return _varchar(col(column, table))


def _first_of(found: list[tuple[exp.Expr, str]]) -> list[exp.Expr]:
    """`account_id` (the first of `found` not null) and `account_match` (its kind)."""
    value = found[-1][0].copy()
    for item, _ in reversed(found[:-1]):
        value = coalesce(item.copy(), value)
    kind = case([(_not_null(item.copy()), text(name)) for item, name in found],
                _varchar(exp.Null()))
    return [alias(value, "account_id"), alias(kind, "account_match")]


def links_query(leads_table: str, lead_columns: Mapping[str, str], accounts_table: str | None,
                account_columns: Mapping[str, str]) -> exp.Select:
    """`lead_id, account_id, account_match` for every lead of the leads table with an
    account (`account_id` trait first, then e-mail domain; see `model.accounts`)."""
    explicit = _text_or_null("traits.account_id", lead_columns, "l")
    explicit = case([(and_(_not_null(explicit), exp.NEQ(this=explicit.copy(),
                                                         expression=text(""))),
                       explicit.copy())], _varchar(exp.Null()))
    # first a message stream's account (its latest group call or identify traits.company)
    found: list[tuple[exp.Expr, str]] = [(_varchar(col("account.id", "l")), "group")] \
        if "account.id" in lead_columns else []
    found.append((explicit, "account_id"))
    query: exp.Select
    if accounts_table is not None and "account.domain" in account_columns and column_kind(
            account_columns["account.domain"]) == STRING:
        domain = exp.Lower(this=exp.Trim(this=col("account.domain")))
        dom = exp.select(alias(domain, "domain"), alias(exp.Min(this=col("account_id")),
                                                    "account_id")) \
            .from_(table(accounts_table)) \
            .where(and_(_not_null(col("account.domain")),
                        exp.NEQ(this=domain.copy(), expression=text("")),
                        exp.not_(exp.In(this=domain.copy(), expressions=[
                            text(d) for d in sorted(FREE_MAIL_DOMAINS)])))) \
            .group_by(domain.copy())
        email = col("traits.email", "l")
        if "traits.email" in lead_columns and column_kind(lead_columns["traits.email"]) \
                == STRING:
            email_domain: exp.Expr = case([(exp.Like(this=email, expression=text("%@%")),
                                             exp.Lower(this=exp.Trim(this=exp.RegexpExtract(
                                                 this=email.copy(),
                                                 expression=text("@([^@]*)$"),
                                                 group=exp.Literal.number(1)))))],
                                           _varchar(exp.Null()))
        else:
            email_domain = _varchar(exp.Null())
        found.append((col("account_id", "d"), "domain"))
        query = exp.select(
            col("lead_id", "l"), *_first_of(found),
        ).from_(table(leads_table, "l")).join(
            dom.subquery("d", copy=False), join_type="LEFT",
            on=exp.EQ(this=col("domain", "d"), expression=email_domain))
    else:
        query = exp.select(col("lead_id", "l"), *_first_of(found)) \
            .from_(table(leads_table, "l"))
    return exp.select(exp.Star()).from_(query.subquery("k", copy=False)) \
        .where(_not_null(col("account_id")))


def compile_account_plan(model: Model, scores_table: str, leads_table: str,
                         lead_columns: Mapping[str, str], accounts_table: str | None,
                         account_columns: Mapping[str, str], as_of_us: int | exp.Expr
                         ) -> exp.Select:
    """One row per account under `model`; roles as flags `r0, r1, …` (in `want` order).
    `as_of_us`: µs, or an expression giving them (a warehouse's current time, dbt's var)."""
    account = compile_account(model)
    assert account is not None
    links = links_query(leads_table, lead_columns, accounts_table, account_columns)
    role_flags = [alias(to_sql(condition, lead_columns, table="l"), f"r{i}")
                  for i, (_, condition) in enumerate(account.roles)]
    links_with_roles = exp.select(col("lead_id", "k"), col("account_id", "k"),
                                  col("account_match", "k"), *role_flags) \
        .from_(links.subquery("k", copy=False)) \
        .join(table(leads_table, "l"),
              on=exp.EQ(this=col("lead_id", "l"), expression=col("lead_id", "k")))
    rank = exp.Window(this=exp.RowNumber(),
                      partition_by=[col("account_id", "m"), col("disqualified", "s")],
                      order=exp.Order(expressions=[
                          exp.Ordered(this=col("engagement", "s"), desc=True),
                          exp.Ordered(this=col("lead_id", "m"))]))
    members = exp.select(col("lead_id", "m"), col("account_id", "m"), col("account_match", "m"),
                         *(col(f"r{i}", "m") for i in range(len(account.roles))),
                         col("engagement", "s"), col("disqualified", "s"), alias(rank, "n")) \
        .from_(links_with_roles.subquery("m", copy=False)) \
        .join(table(scores_table, "s"),
              on=exp.EQ(this=col("lead_id", "s"), expression=col("lead_id", "m")))
    counted = exp.not_(col("disqualified"))
    engaged = and_(counted.copy(), exp.GT(this=col("engagement"), expression=ZERO.copy()))

    def count_if(condition: exp.Expr, name: str) -> exp.Expr:
        return alias(exp.Sum(this=case([(condition, exp.Literal.number(1))],
                                      exp.Literal.number(0))), name)

    value = case([(counted.copy(), col("engagement"))], double(exp.Null()))
    if account.rollup == "max":
        rolled: exp.Expr = exp.Max(this=value)
    elif account.rollup == "top3_mean":
        rolled = exp.Avg(this=case([(and_(counted.copy(), exp.LTE(
            this=col("n"), expression=exp.Literal.number(3))), col("engagement"))],
            double(exp.Null())))
    else:
        rolled = exp.Sum(this=value)
    agg = exp.select(
        col("account_id"), alias(exp.Count(this=exp.Star()), "leads"),
        count_if(engaged, "engaged_leads"), alias(rolled, "rolled"),
        count_if(exp.EQ(this=col("account_match"), expression=text("account_id")),
                 "by_account_id"),
        count_if(exp.EQ(this=col("account_match"), expression=text("domain")), "by_domain"),
        *(count_if(and_(engaged.copy(), col(f"r{i}")), f"r{i}")
          for i in range(len(account.roles))),
    ).from_(members.subquery("x", copy=False)).group_by(col("account_id"))
    ids: exp.Query = exp.select(col("account_id")).from_(links.copy().subquery("k2"))
    if accounts_table is not None:
        ids = exp.union(exp.select(col("account_id")).from_(table(accounts_table)), ids,
                        distinct=True)
    people = exp.select(alias(col("account_id", "i"), "account_id"),
                        *(col(c, "t") for c in account_columns if c != "account_id"),
                        *(col(c, "g") for c in ("leads", "engaged_leads", "rolled",
                                                "by_account_id", "by_domain")),
                        *(col(f"r{i}", "g") for i in range(len(account.roles))))
    people = people.from_(exp.select(col("account_id")).distinct().from_(ids.subquery("u"))
                          .subquery("i", copy=False))
    if accounts_table is not None:
        people = people.join(table(accounts_table, "t"), join_type="LEFT",
                             on=exp.EQ(this=col("account_id", "t"),
                                       expression=col("account_id", "i")))
    people = people.join(agg.subquery("g", copy=False), join_type="LEFT",
                         on=exp.EQ(this=col("account_id", "g"), expression=col("account_id", "i")))
    return _final(model.name, account, people, account_columns, as_of_us)


def _final(name: str, account: CompiledAccount, people: exp.Select,
           account_columns: Mapping[str, str], as_of_us: int | exp.Expr) -> exp.Select:
    fit_terms: list[exp.Expr] = []
    disqualify: list[tuple[exp.Expr, exp.Expr]] = []
    for rule in account.fit:
        if rule.bands:
            whens = [(to_sql(band, account_columns), double(number(points)))
                     for band, points in rule.bands]
            fit_terms.append(case(whens, ZERO.copy()))
            matched: exp.Expr = or_(*(w.copy() for w, _ in whens))
        else:
            assert rule.when is not None
            matched = to_sql(rule.when, account_columns)
            fit_terms.append(case([(matched, double(number(rule.points)))], ZERO.copy()))
        if rule.disqualify is not None:
            disqualify.append((matched.copy(), text(rule.disqualify)))
    fit = sum_of(fit_terms) if fit_terms else ZERO.copy()
    reason = case(disqualify) if disqualify else _varchar(exp.Null())
    engagement = coalesce(col("rolled"), ZERO.copy())
    scored = exp.select(
        col("account_id"), alias(double(fit), "fit"), alias(double(engagement), "engagement"),
        alias(reason, "disqualify_reason"),
        *(alias(exp.cast(coalesce(col(c), exp.Literal.number(0)), exp.DataType.Type.BIGINT), c)
          for c in ("leads", "engaged_leads", "by_account_id", "by_domain")),
        *(alias(exp.GT(this=coalesce(col(f"r{i}"), exp.Literal.number(0)),
                     expression=exp.Literal.number(0)), f"r{i}")
          for i in range(len(account.roles))),
    ).from_(people.subquery("p", copy=False))
    total = exp.Add(this=col("fit"), expression=col("engagement"))
    mqa: exp.Expr = exp.false()
    if account.mqa is not None:
        mqa = and_(exp.Is(this=col("disqualify_reason"), expression=exp.Null()),
                   exp.GTE(this=exp.Paren(this=total.copy()),
                           expression=double(number(account.mqa))))
    return exp.select(
        col("account_id"), alias(text(name), "model"), col("fit"), col("engagement"),
        alias(double(total), "score"), alias(_not_null(col("disqualify_reason")), "disqualified"),
        col("disqualify_reason"), *(col(f"r{i}") for i in range(len(account.roles))),
        alias(mqa, "mqa"), col("leads"), col("engaged_leads"),
        alias(exp.cast(exp.Literal.number(0), exp.DataType.Type.BIGINT), "leads_by_group"),
        alias(col("by_account_id"), "leads_by_account_id"), alias(col("by_domain"),
                                                              "leads_by_domain"),
        alias(exp.cast(exp.Literal.number(as_of_us) if isinstance(as_of_us, int)
                       else as_of_us.copy(), exp.DataType.Type.BIGINT), "as_of"),
    ).from_(scored.subquery("f", copy=False)).order_by(col("account_id"))
