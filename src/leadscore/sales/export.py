"""Exports a CRM takes: every matching lead as CSV (streamed, not a page), and sales'
feedback as an outcomes file `evaluate --outcomes` and `learn --outcomes` read directly."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from leadscore.csvtext import cell
from leadscore.sales.feedback import EVENT_STATUSES
from leadscore.store import sales as store
from leadscore.store.database import Database
from leadscore.store.scores import listing_query, score_row
from leadscore.timeutil import iso

LEAD_COLUMNS = ("lead_id", "model", "score", "fit", "engagement", "grade", "temperature",
                "stage", "mql", "disqualified", "disqualify_reason", "owner", "email", "name",
                "company", "account_id", "as_of", "top_reasons")
FEEDBACK_COLUMNS = ("lead_id", "status", "reason", "at", "owner", "by", "converted",
                    "converted_at")
OUTCOMES = ("won", "accepted")      # what `converted` means in the feedback export
TOP_REASONS = 3
CHUNK = 1000


def top_reasons(reasons: Any, n: int = TOP_REASONS) -> str:
    """The rules with the most points (by size), as `rule (+12.5); rule (−10)`."""
    found = [r for r in reasons or () if isinstance(r, Mapping) and (
        r.get("points") or r.get("kind") == "disqualify")]
    found.sort(key=lambda r: -abs(float(r.get("points") or 0)))
    return "; ".join(f"{r['rule']} ({'disqualifies' if r.get('kind') == 'disqualify' else format(float(r['points']), '+.4g')})"  # noqa: E501
                     for r in found[:n])


def _line(values: list[Any], *, for_people: bool = False) -> str:
    """One CSV line; `for_people`: cells a spreadsheet would run as formulas are escaped
    (`csvtext.cell`) — the leads export is opened in spreadsheets, the feedback export is read
    back by `evaluate`/`learn`, so its ids must stay as they are."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([cell(v) for v in values] if for_people
                                                  else values)
    return out.getvalue()


def leads_csv(db: Database, filters: Mapping[str, Any]) -> Iterator[str]:
    """The leads listing's rows (same filters and order), every one of them, as CSV lines;
    read from one snapshot in chunks, so memory stays flat however many there are."""
    yield _line(list(LEAD_COLUMNS), for_people=True)
    with db.read() as connection:
        query, _ = listing_query(connection, count=False, **filters)
        result = connection.execution_options(yield_per=CHUNK).execute(query)
        for row in result:
            mapping = row._mapping
            plain = score_row(mapping)
            traits = plain["traits"] or {}
            yield _line([
                plain["lead_id"], plain["model"], plain["score"], plain["fit"],
                plain["engagement"], plain["grade"], plain["temperature"], plain["stage"],
                plain["mql"], plain["disqualified"], plain["disqualify_reason"],
                plain["owner"], traits.get("email"), traits.get("name"),
                traits.get("company"), plain["account_id"], plain["as_of"],
                top_reasons(mapping["reasons"])], for_people=True)


def feedback_rows(db: Database, outcome: str = "won") -> list[dict[str, Any]]:
    """Every verdict of the log: lead_id, status, reason, at, owner (of the handoff it
    answered), by; `converted` (1 for `won`, or for `accepted` with outcome="accepted") and
    `converted_at`, the columns the outcomes readers take."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    with db.read() as connection:
        log = store.feedback_log(connection, list(EVENT_STATUSES))
        owners = _owners_at(connection, {row["lead_id"] for row in log})
    rows = []
    for entry in log:
        status = EVENT_STATUSES[entry["event"]]
        properties = (entry["message"] or {}).get("properties") or {}
        converted = status == "won" or (outcome == "accepted" and status in (
            "accepted", "qualified", "opportunity", "won"))
        rows.append({
            "lead_id": entry["lead_id"], "status": status,
            "reason": _text(properties.get("reason")), "at": iso(entry["at"]),
            "owner": _owner(owners.get(entry["lead_id"], []), entry["at"]),
            "by": _text(properties.get("by")), "converted": int(converted),
            "converted_at": iso(entry["at"]) if converted else None})
    return rows


def feedback_csv(rows: list[dict[str, Any]]) -> Iterator[str]:
    yield _line(list(FEEDBACK_COLUMNS))
    for row in rows:
        yield _line([row[c] for c in FEEDBACK_COLUMNS])


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _owners_at(connection: Any, lead_ids: set[str]) -> dict[str, list[tuple[int, str | None]]]:
    out: dict[str, list[tuple[int, str | None]]] = {}
    for row in store.all_assignments(connection):
        if row["lead_id"] in lead_ids:
            out.setdefault(row["lead_id"], []).append((row["assigned_at"], row["owner"]))
    return out


def _owner(assigned: list[tuple[int, str | None]], at: int) -> str | None:
    """The owner of the latest assignment before `at` (else the first one's)."""
    before = [owner for when, owner in assigned if when <= at]
    return before[-1] if before else (assigned[0][1] if assigned else None)
