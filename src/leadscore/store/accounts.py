"""Accounts in the store: which account each lead belongs to, accounts' domains, and account
scores (created by migration step 4).

`account_links` holds each live lead's account and how it was matched (`group`: the leads
row's `account_id`, set by a group call or `traits.company`; `account_id`: the lead's
`account_id` trait; `domain`: its e-mail domain is an account's `domain`, see
`model.accounts`), and its e-mail domain even without an account, so that an account whose
`domain` appears later finds its leads. `account_domains` is the index of accounts' domains.
`account_scores` is one row per account and model: the score as last saved, its MQA flag and
how many times it crossed (the handoff id counts crossings, as a lead's does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    Table,
    Text,
    delete,
    func,
    or_,
    select,
    union,
)

from leadscore.model.accounts import (
    FREE_MAIL_DOMAINS,
    account_domain,
    account_of,
    email_domain,
)
from leadscore.scores import AccountScore
from leadscore.store.database import Database
from leadscore.store.schema import Micros, accounts, leads, metadata
from leadscore.store.scores import contains_pattern, reason_dict

account_links = Table(
    "account_links", metadata,
    Column("lead_id", Text, primary_key=True),
    Column("account_id", Text),
    Column("account_match", Text),                    # group | account_id | domain
    Column("email_domain", Text),                     # the lead's, free-mail left out
    Index("ix_account_links_account", "account_id"),
    Index("ix_account_links_domain", "email_domain"),
)

account_domains = Table(
    "account_domains", metadata,
    Column("account_id", Text, primary_key=True),
    Column("domain", Text, nullable=False, index=True),   # lower-cased; never free-mail
)

account_scores = Table(
    "account_scores", metadata,
    Column("account_id", Text, primary_key=True),
    Column("model", Text, primary_key=True),
    Column("model_version", Integer, nullable=False),
    Column("fit", Double, nullable=False),
    Column("engagement", Double, nullable=False),
    Column("score", Double, nullable=False),
    Column("disqualified", Boolean, nullable=False),
    Column("disqualify_reason", Text),
    Column("roles_engaged", JSON, nullable=False),
    Column("roles_missing", JSON, nullable=False),
    Column("mqa", Boolean, nullable=False),
    Column("crossings", Integer, nullable=False),
    Column("leads", Integer, nullable=False),
    Column("engaged_leads", Integer, nullable=False),
    Column("leads_by_group", Integer, nullable=False),
    Column("leads_by_account_id", Integer, nullable=False),
    Column("leads_by_domain", Integer, nullable=False),
    Column("as_of", Micros, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("updated_at", Micros, nullable=False),
    Index("ix_account_scores_model_score", "model", "score", "account_id"),
)

ACCOUNT_TABLES = (account_links, account_domains, account_scores)
SORTS = ("score", "fit", "engagement", "account_id", "as_of")


# ---- links


def domain_of(traits: Mapping[str, Any]) -> str | None:
    """An account's domain as matched against e-mail domains (None: free-mail or none)."""
    domain = account_domain(traits.get("domain"))
    return None if domain is None or domain in FREE_MAIL_DOMAINS else domain


def set_domains(db: Database, connection: Connection, changed: Mapping[str, Mapping[str, Any]]
                ) -> set[str]:
    """Record the domains of accounts whose traits changed; return the leads whose link may
    change with them (their e-mail domain is an old or a new one)."""
    if not changed:
        return set()
    old = dict(connection.execute(select(account_domains.c.account_id, account_domains.c.domain)
                                  .where(account_domains.c.account_id.in_(set(changed)))).all())
    moved: set[str] = set()
    for account_id, traits in sorted(changed.items()):
        new = domain_of(traits)
        if new == old.get(account_id):
            continue
        moved |= {d for d in (new, old.get(account_id)) if d is not None}
        if new is None:
            connection.execute(delete(account_domains).where(
                account_domains.c.account_id == account_id))
        else:
            db.upsert(connection, account_domains, {"account_id": account_id, "domain": new},
                      ("account_id",))
    if not moved:
        return set()
    return set(connection.execute(select(account_links.c.lead_id).where(
        account_links.c.email_domain.in_(moved))).scalars())


def relink(db: Database, connection: Connection, lead_ids: Iterable[str]) -> set[str]:
    """Link the leads to their accounts again from their rows (a lead merged away loses its
    link); return the accounts whose members changed (the old and the new one of each)."""
    wanted = sorted(set(lead_ids))
    if not wanted:
        return set()
    rows = {row.id: row for row in connection.execute(
        select(leads.c.id, leads.c.traits, leads.c.account_id, leads.c.merged_into).where(
            leads.c.id.in_(wanted)))}
    before = {row.lead_id: row for row in connection.execute(
        select(account_links).where(account_links.c.lead_id.in_(wanted)))}
    domains = {email_domain((row.traits or {}).get("email")) for row in rows.values()} - {None}
    index = dict(connection.execute(
        select(account_domains.c.domain, func.min(account_domains.c.account_id))
        .where(account_domains.c.domain.in_(domains)).group_by(account_domains.c.domain)
    ).all()) if domains else {}
    touched: set[str] = set()
    upserts, gone = [], []
    for lead_id in wanted:
        row, old = rows.get(lead_id), before.get(lead_id)
        link = None
        if row is not None and row.merged_into is None:
            traits = row.traits or {}
            found = account_of(traits, row.account_id, index)
            domain = email_domain(traits.get("email"))
            if domain in FREE_MAIL_DOMAINS:
                domain = None
            if found is not None or domain is not None:
                link = {"lead_id": lead_id, "account_id": found[0] if found else None,
                        "account_match": found[1] if found else None, "email_domain": domain}
        old_link = None if old is None else {
            "lead_id": lead_id, "account_id": old.account_id,
            "account_match": old.account_match, "email_domain": old.email_domain}
        if link == old_link:
            continue
        for side in (link, old_link):
            if side is not None and side["account_id"] is not None:
                touched.add(side["account_id"])
        if link is None:
            gone.append(lead_id)
        else:
            upserts.append(link)
    if gone:
        connection.execute(delete(account_links).where(account_links.c.lead_id.in_(gone)))
    db.upsert_many(connection, account_links, upserts, ("lead_id",))
    return touched


def accounts_of(connection: Connection, lead_ids: Iterable[str]) -> dict[str, str]:
    """Lead id → account id, for those of the leads that have an account."""
    wanted = set(lead_ids)
    if not wanted:
        return {}
    return dict(connection.execute(select(account_links.c.lead_id, account_links.c.account_id)
                                   .where(account_links.c.lead_id.in_(wanted),
                                          account_links.c.account_id.is_not(None))).all())


def link_of(connection: Connection, lead_id: str) -> dict[str, str] | None:
    """{account_id, match} of a lead's account, or None."""
    row = connection.execute(select(account_links.c.account_id, account_links.c.account_match)
                             .where(account_links.c.lead_id == lead_id,
                                    account_links.c.account_id.is_not(None))).first()
    return None if row is None else {"account_id": row.account_id, "match": row.account_match}


def members(connection: Connection, account_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Account id → its leads (lead id → match kind), for each account asked (maybe empty)."""
    wanted = sorted(set(account_ids))
    found: dict[str, dict[str, str]] = {a: {} for a in wanted}
    if wanted:
        for lead_id, account_id, kind in connection.execute(
                select(account_links.c.lead_id, account_links.c.account_id,
                       account_links.c.account_match)
                .where(account_links.c.account_id.in_(wanted))
                .order_by(account_links.c.lead_id)):
            found[account_id][lead_id] = kind
    return found


def traits(connection: Connection, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Account id → its traits ({} for an account only named by a lead)."""
    wanted = set(account_ids)
    found = dict(connection.execute(select(accounts.c.id, accounts.c.traits).where(
        accounts.c.id.in_(wanted))).all()) if wanted else {}
    return {a: dict(found.get(a) or {}) for a in wanted}


def known(connection: Connection) -> list[str]:
    """Every account: those with a row (group calls, `traits.company`) and those a lead names."""
    query = union(select(accounts.c.id.label("id")),
                  select(account_links.c.account_id.label("id")).where(
                      account_links.c.account_id.is_not(None))).subquery()
    return list(connection.execute(select(query.c.id).order_by(query.c.id)).scalars())


def exists(connection: Connection, account_id: str) -> bool:
    return connection.execute(select(func.count()).select_from(
        select(accounts.c.id.label("id")).where(accounts.c.id == account_id).union_all(
            select(account_links.c.account_id.label("id")).where(
                account_links.c.account_id == account_id)).subquery())).scalar() != 0


def backfill(connection: Connection, chunk: int = 5_000) -> None:
    """Links and domains of a store scored before step 4 (every live lead, every account)."""
    dialect = connection.dialect.name
    insert = _insert(dialect)
    domains = {}
    for account_id, account_traits in connection.execute(select(accounts.c.id,
                                                                accounts.c.traits)):
        domain = domain_of(account_traits or {})
        if domain is not None:
            domains[account_id] = domain
    if domains:
        connection.execute(insert(account_domains), [
            {"account_id": a, "domain": d} for a, d in sorted(domains.items())])
    index: dict[str, str] = {}
    for account_id, domain in sorted(domains.items()):
        index.setdefault(domain, account_id)
    rows = []
    for lead_id, lead_traits, group in connection.execute(
            select(leads.c.id, leads.c.traits, leads.c.account_id).where(
                leads.c.merged_into.is_(None)).order_by(leads.c.id)):
        lead_traits = lead_traits or {}
        found = account_of(lead_traits, group, index)
        domain = email_domain(lead_traits.get("email"))
        if domain in FREE_MAIL_DOMAINS:
            domain = None
        if found is not None or domain is not None:
            rows.append({"lead_id": lead_id, "account_id": found[0] if found else None,
                         "account_match": found[1] if found else None,
                         "email_domain": domain})
    for start in range(0, len(rows), chunk):
        connection.execute(insert(account_links), rows[start:start + chunk])


def _insert(dialect: str) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)


# ---- scores


def saved(connection: Connection, account_ids: Iterable[str], models: Iterable[str], *,
          lock: bool = False) -> dict[tuple[str, str], Any]:
    """(account id, model) → the saved score row; `lock` holds the rows until commit
    (PostgreSQL), in key order as every writer takes them."""
    wanted, names = sorted(set(account_ids)), sorted(set(models))
    if not wanted or not names:
        return {}
    query = select(account_scores).where(account_scores.c.account_id.in_(wanted),
                                         account_scores.c.model.in_(names)).order_by(
        account_scores.c.account_id, account_scores.c.model)
    if lock:
        query = query.with_for_update()
    return {(row.account_id, row.model): row for row in connection.execute(query)}


def score_row(score: AccountScore, version: int, crossings: int, now: int) -> dict[str, Any]:
    return {"account_id": score.account_id, "model": score.model, "model_version": version,
            "fit": score.fit, "engagement": score.engagement, "score": score.score,
            "disqualified": score.disqualified, "disqualify_reason": score.disqualify_reason,
            "roles_engaged": list(score.roles_engaged),
            "roles_missing": list(score.roles_missing), "mqa": score.mqa,
            "crossings": crossings, "leads": score.leads, "engaged_leads": score.engaged_leads,
            "leads_by_group": score.leads_by_group,
            "leads_by_account_id": score.leads_by_account_id,
            "leads_by_domain": score.leads_by_domain, "as_of": score.as_of,
            "reasons": [reason_dict(r) for r in score.reasons], "updated_at": now}


def save(db: Database, connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    db.upsert_many(connection, account_scores, list(rows), ("account_id", "model"))


def drop_models(connection: Connection, keep: Iterable[str]) -> None:
    """Forget the scores under models no longer active with an `account:` section."""
    connection.execute(delete(account_scores).where(account_scores.c.model.not_in(
        list(keep))))


def stale(connection: Connection, versions: Mapping[str, int]) -> set[str]:
    """The models (name → active version) under which some account has no score saved at
    that version (a store migrated to step 4, a new model with an `account:` section)."""
    out = set()
    total = len(known(connection))
    for name, version in versions.items():
        current = connection.execute(select(func.count()).select_from(account_scores).where(
            account_scores.c.model == name,
            account_scores.c.model_version == version)).scalar()
        if (current or 0) < total:
            out.add(name)
    return out


def listing(connection: Connection, *, model: str | None = None,
            min_score: float | None = None, mqa: bool | None = None, q: str | None = None,
            sort: str = "score", descending: bool = True, limit: int = 50, offset: int = 0
            ) -> tuple[list[dict[str, Any]], int]:
    """Saved account scores, filtered and sorted in SQL, and the total matching."""
    where = []
    if model is not None:
        where.append(account_scores.c.model == model)
    if min_score is not None:
        where.append(account_scores.c.score >= min_score)
    if mqa is not None:
        where.append(account_scores.c.mqa.is_(mqa))
    if q:
        pattern = contains_pattern(q)
        where.append(or_(account_scores.c.account_id.ilike(pattern, escape="\\"),
                         accounts.c.traits["name"].as_string().ilike(pattern, escape="\\"),
                         accounts.c.traits["domain"].as_string().ilike(pattern, escape="\\")))
    joined = account_scores.outerjoin(accounts, accounts.c.id == account_scores.c.account_id)
    total = connection.execute(select(func.count()).select_from(joined).where(*where)).scalar()
    column = getattr(account_scores.c, sort if sort in SORTS else "score")
    order = [column.desc() if descending else column.asc(),
             account_scores.c.account_id.asc(), account_scores.c.model.asc()]
    rows = connection.execute(select(account_scores, accounts.c.traits.label("traits"))
                              .select_from(joined).where(*where).order_by(*order)
                              .limit(limit).offset(offset))
    return [row_json(row) for row in rows], int(total or 0)


def row_json(row: Any) -> dict[str, Any]:
    """A saved account score as the API lists it."""
    from leadscore.timeutil import iso

    return {"account_id": row.account_id, "model": row.model,
            "model_version": row.model_version, "traits": dict(row.traits or {}),
            "score": row.score, "fit": row.fit, "engagement": row.engagement,
            "disqualified": row.disqualified, "disqualify_reason": row.disqualify_reason,
            "mqa": row.mqa, "roles_engaged": list(row.roles_engaged or []),
            "roles_missing": list(row.roles_missing or []), "leads": row.leads,
            "engaged_leads": row.engaged_leads, "as_of": iso(row.as_of)}
