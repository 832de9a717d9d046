"""Per-lead engine state and the scores table (for listing and filtering in SQL)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, delete, func, or_, select

from leadscore.scores import Reason, Score
from leadscore.store import driver
from leadscore.store.database import Database
from leadscore.store.schema import lead_state, leads, scores
from leadscore.timeutil import iso

SORTS = {"score": scores.c.score, "fit": scores.c.fit, "engagement": scores.c.engagement,
         "grade": scores.c.grade, "temperature": scores.c.temperature,
         "stage": scores.c.stage, "lead_id": scores.c.lead_id, "as_of": scores.c.as_of,
         "updated_at": scores.c.as_of}
# Text searched by `q`, besides the lead id.
SEARCHED_TRAITS = ("email", "name", "first_name", "last_name", "firstName", "lastName",
                   "company")


def contains_pattern(text: str) -> str:
    """A LIKE pattern (escape character `\\`) matching values that contain `text` as is."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def states(connection: Connection, lead_id: str) -> dict[str, Any]:
    """The lead's saved engine state rows by model name."""
    return {row.model: row for row in connection.execute(
        select(lead_state).where(lead_state.c.lead_id == lead_id))}


class SavedState(NamedTuple):
    """A lead's saved engine state under one model (a row of `lead_state`)."""

    lead_id: str
    model: str
    model_version: int
    latest: int | None
    state: Any          # the decoded JSON, or its text (`states_many(text=True)`)


def states_many(connection: Connection, lead_ids: Iterable[str], *, text: bool = False
                ) -> dict[str, dict[str, Any]]:
    """The saved engine state rows of many leads (lead id → model name → row), in one
    statement; a lead without any is left out. `text`: each state as the JSON text stored
    (not decoded; the same text `Saving` wrote it as, on both dialects)."""
    wanted = set(lead_ids)
    found: dict[str, dict[str, Any]] = {}
    if wanted:
        where, params = driver.matching(connection, "lead_id", wanted)
        # A JSON (not JSONB) column gives back the text written, byte for byte.
        column = "state::text" if text and driver.postgres(connection) else "state"
        decode = str if text else driver.loads
        for lead_id, model, version, latest, state in driver.select_rows(
                connection, f"SELECT lead_id, model, model_version, latest, {column} "
                f"FROM lead_state WHERE {where}", params):
            found.setdefault(lead_id, {})[model] = SavedState(
                lead_id, model, version, latest, decode(state))
    return found


def forget_states(connection: Connection, lead_id: str) -> None:
    """Drop the lead's saved engine states: its next load replays its events."""
    connection.execute(delete(lead_state).where(lead_state.c.lead_id == lead_id))


def mql_models(connection: Connection, lead_id: str) -> set[str]:
    """The models under which the lead's saved score is an MQL."""
    return set(connection.execute(select(scores.c.model).where(
        scores.c.lead_id == lead_id, scores.c.mql.is_(True))).scalars())


# Engagement this close to 0 is left as saved by `decaying`: decay never reaches 0 exactly.
SETTLED = 1e-6


def decaying(connection: Connection, saved_before: int, moving: Sequence[str] = ()
             ) -> list[str]:
    """Live leads whose saved score time may have moved since, saved as of before
    `saved_before` (µs): engagement not yet settled at 0 under some model (decay), or any
    score under one of the models `moving` (whose fit moves with time: `age_of` rules)."""
    moved = or_(scores.c.engagement > SETTLED, scores.c.engagement < -SETTLED)
    if moving:
        moved = or_(moved, scores.c.model.in_(list(moving)))
    query = select(scores.c.lead_id).join(leads, leads.c.id == scores.c.lead_id).where(
        leads.c.merged_into.is_(None), scores.c.as_of < saved_before, moved,
    ).distinct().order_by(scores.c.lead_id)
    return list(connection.execute(query).scalars())


def reason_dict(reason: Reason) -> dict[str, Any]:
    return {"rule": reason.rule, "kind": reason.kind, "points": reason.points,
            "matched": reason.matched, "counted": reason.counted, "last_at": reason.last_at,
            "detail": reason.detail}


def save(db: Database, connection: Connection, lead_id: str, model: str, version: int,
         latest: int | None, state: dict[str, Any], score: Score | None, now: int) -> None:
    """Save one lead's state under one model and its score (None: the model does not apply)."""
    db.upsert(connection, lead_state, {
        "lead_id": lead_id, "model": model, "model_version": version, "latest": latest,
        "state": state, "updated_at": now}, ("lead_id", "model"))
    if score is None:
        connection.execute(delete(scores).where(scores.c.lead_id == lead_id,
                                                scores.c.model == model))
        return
    db.upsert(connection, scores, {
        "lead_id": lead_id, "model": model, "model_version": version, "fit": score.fit,
        "engagement": score.engagement, "score": score.score, "grade": score.grade,
        "temperature": score.temperature, "stage": score.stage, "mql": score.mql,
        "disqualified": score.disqualified, "disqualify_reason": score.disqualify_reason,
        "purchases": score.purchases, "customer_since": score.customer_since,
        "as_of": score.as_of, "reasons": [reason_dict(r) for r in score.reasons]},
        ("lead_id", "model"))


class Saving:
    """The states and scores of many leads, written with one statement per table (`save`
    row by row costs two round trips per lead and model)."""

    _DROP = delete(scores).where(scores.c.lead_id == bindparam("lead"),
                                 scores.c.model == bindparam("name"))

    def __init__(self) -> None:
        self.states: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []

    def add(self, lead_id: str, model: str, version: int, latest: int | None,
            state: dict[str, Any] | str, score: Score | None, now: int) -> None:
        """`state`: the engine state, or its JSON text already encoded."""
        self.states.append({"lead_id": lead_id, "model": model, "model_version": version,
                            "latest": latest, "state": state, "updated_at": now})
        if score is None:
            self.dropped.append({"lead": lead_id, "name": model})
            return
        self.scores.append({
            "lead_id": lead_id, "model": model, "model_version": version, "fit": score.fit,
            "engagement": score.engagement, "score": score.score, "grade": score.grade,
            "temperature": score.temperature, "stage": score.stage, "mql": score.mql,
            "disqualified": score.disqualified, "disqualify_reason": score.disqualify_reason,
            "purchases": score.purchases, "customer_since": score.customer_since,
            "as_of": score.as_of, "reasons": [reason_dict(r) for r in score.reasons]})

    def write(self, db: Database, connection: Connection) -> None:
        """Through the driver (see `store.driver`): one statement per table
        (`driver.insert_many`)."""
        dumps = driver.dumps
        driver.insert_many(connection, lead_state, STATE_COLUMNS, [
            (r["lead_id"], r["model"], r["model_version"], r["latest"], r["state"]
             if isinstance(r["state"], str) else dumps(r["state"]), r["updated_at"])
            for r in self.states], KEYS)
        driver.insert_many(connection, scores, SCORE_COLUMNS, [
            (*(r[c] for c in SCORE_COLUMNS[:-1]), dumps(r["reasons"])) for r in self.scores],
            KEYS)
        if self.dropped:
            connection.execute(self._DROP, self.dropped)
        self.states, self.scores, self.dropped = [], [], []


KEYS = ("lead_id", "model")
STATE_COLUMNS = ("lead_id", "model", "model_version", "latest", "state", "updated_at")
SCORE_COLUMNS = ("lead_id", "model", "model_version", "fit", "engagement", "score", "grade",
                 "temperature", "stage", "mql", "disqualified", "disqualify_reason",
                 "purchases", "customer_since", "as_of", "reasons")   # JSON last


def _many(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def list_scores(connection: Connection, *, model: str | None = None,
                grade: str | Sequence[str] | None = None,
                temperature: str | Sequence[str] | None = None,
                stage: str | Sequence[str] | None = None, min_score: float | None = None,
                disqualified: bool | None = None, q: str | None = None, sort: str = "score",
                descending: bool = True, limit: int | None = 50, offset: int = 0,
                owner: str | Sequence[str] | None = None, count: bool = True
                ) -> tuple[list[dict[str, Any]], int]:
    """Saved scores joined with their leads and current owner (sales' latest assignment),
    filtered and sorted in SQL; and the total (-1 without `count`)."""
    from leadscore.store.sales import owners_of

    # The owners' join only to filter by owner: a page reads its rows' owners by key.
    query, total = listing_query(connection, model=model, grade=grade,
                                 temperature=temperature, stage=stage, min_score=min_score,
                                 disqualified=disqualified, q=q, sort=sort,
                                 descending=descending, owner=owner, count=count,
                                 with_owner=owner is not None)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    rows = [score_row(row._mapping) for row in connection.execute(query)]
    if owner is None:
        owned = owners_of(connection, sorted({r["lead_id"] for r in rows}))
        for row in rows:
            row["owner"] = owned.get(row["lead_id"])
    return rows, total


def listing_query(connection: Connection, *, model: str | None = None,
                  grade: str | Sequence[str] | None = None,
                  temperature: str | Sequence[str] | None = None,
                  stage: str | Sequence[str] | None = None, min_score: float | None = None,
                  disqualified: bool | None = None, q: str | None = None, sort: str = "score",
                  descending: bool = True, owner: str | Sequence[str] | None = None,
                  count: bool = True, with_owner: bool = True) -> tuple[Any, int]:
    """The listing's SELECT (every matching row, in order; with each lead's current owner
    unless `with_owner=False`) and its total (-1 unless `count`); `score_row` reads its
    rows."""
    from leadscore.store.sales import current_owner_subquery

    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; expected one of {', '.join(SORTS)}")
    conditions: list[Any] = [leads.c.merged_into.is_(None)]
    if model is not None:
        conditions.append(scores.c.model == model)
    for column, wanted in ((scores.c.grade, grade), (scores.c.temperature, temperature),
                           (scores.c.stage, stage)):
        values = _many(wanted)
        if values is not None:
            conditions.append(column.in_(values))
    if min_score is not None:
        conditions.append(scores.c.score >= min_score)
    if disqualified is not None:
        conditions.append(scores.c.disqualified.is_(disqualified))
    if q:
        pattern = contains_pattern(q)
        conditions.append(or_(
            scores.c.lead_id.ilike(pattern, escape="\\"),
            *(leads.c.traits[name].as_string().ilike(pattern, escape="\\")
              for name in SEARCHED_TRAITS)))
    owners = current_owner_subquery()
    joined = scores.join(leads, leads.c.id == scores.c.lead_id)
    if with_owner or owner is not None:
        joined = joined.outerjoin(owners, owners.c.lead_id == scores.c.lead_id)
    wanted_owners = _many(owner)
    if wanted_owners is not None:
        conditions.append(owners.c.owner.in_(wanted_owners))
    total = int(connection.execute(select(func.count()).select_from(joined).where(
        *conditions)).scalar() or 0) if count else -1
    key = SORTS[sort]
    order = [key.desc() if descending else key.asc()]
    if descending and sort in ("grade", "temperature"):
        order = [key.asc()]   # A before B; cold < hot < warm is no order: keep it simple
    columns: list[Any] = [scores, leads.c.traits, leads.c.account_id]
    if with_owner or owner is not None:
        columns.append(owners.c.owner)
    query = select(*columns).select_from(joined).where(*conditions).order_by(
        *order, scores.c.lead_id, scores.c.model)
    return query, total


def score_row(row: Any) -> dict[str, Any]:
    """A saved score as the API shows it (times as ISO-8601)."""
    return {
        "lead_id": row["lead_id"], "model": row["model"], "score": row["score"],
        "fit": row["fit"], "engagement": row["engagement"], "grade": row["grade"],
        "temperature": row["temperature"], "stage": row["stage"], "mql": row["mql"],
        "disqualified": row["disqualified"], "disqualify_reason": row["disqualify_reason"],
        "as_of": iso(row["as_of"]), "traits": row.get("traits") or {},
        "account_id": row.get("account_id"), "owner": row.get("owner"),
    }
