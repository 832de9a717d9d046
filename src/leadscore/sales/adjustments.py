"""Manual adjustments as the events every engine scores: the adjustment itself, a `Program
Points Added` of program `adjustment` at its time, and — when it expires — one more per model at
`expires_at` taking off what is left of it. Decay is memoryless, so −p·2^(−(E − t)/h) added at E
and decaying from there cancels the adjustment exactly ever after.

The service writes these into its log (`SalesDesk.adjust`, the expiry by the server's sales
round); `adjustments_as_events` turns an adjustments table (lead_id, points, reason, at,
expires_at, model, by, id) into the same messages for a batch run."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from leadscore.errors import InputError
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

ADJUSTMENT = "adjustment"          # the `program` of an adjustment's points event
POINTS_EVENT = "Program Points Added"


def identity_field(kind: str) -> str:
    return "userId" if kind == "user" else "anonymousId"


def points_message(adjustment_id: str, identity: tuple[str, str], points: float, reason: str,
                   at: int, model: str | None = None, by: str | None = None
                   ) -> dict[str, Any]:
    properties: dict[str, Any] = {"points": points, "reason": reason, "program": ADJUSTMENT,
                                  "adjustment_id": adjustment_id}
    if by is not None:
        properties["by"] = by
    if model is not None:
        properties["model"] = model
    return {"type": "track", "event": POINTS_EVENT, "properties": properties,
            "timestamp": iso(at), "messageId": adjustment_id,
            identity_field(identity[0]): identity[1]}


def expiry_messages(adjustment_id: str, identity: tuple[str, str], points: float, reason: str,
                    at: int, expires_at: int, model: str | None,
                    half_lives: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """At `expires_at`, per model (`model`, or every model of `half_lives`): what is left of
    the adjustment, taken off."""
    out = []
    for name in [model] if model is not None else sorted(half_lives):
        if name not in half_lives:
            continue
        half_life = half_lives[name]
        elapsed = (expires_at - at) / US_PER_DAY
        left = points * (1.0 if half_life is None else math.pow(2.0, -elapsed / half_life))
        out.append({"type": "track", "event": POINTS_EVENT, "timestamp": iso(expires_at),
                    "messageId": f"{adjustment_id}-expiry-{name}",
                    identity_field(identity[0]): identity[1],
                    "properties": {"points": -left, "reason": reason, "program": ADJUSTMENT,
                                   "model": name, "adjustment_id": adjustment_id,
                                   "expiry": True}})
    return out


def adjustments_as_events(rows: Iterable[Mapping[str, Any]],
                          half_lives: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """An adjustments table's rows as Segment messages for a batch run (userId = lead_id);
    InputError naming the row and column of a bad value."""
    out: list[dict[str, Any]] = []
    for n, row in enumerate(rows, start=1):
        def bad(column: str, why: str, row_number: int = n) -> InputError:
            return InputError(f"adjustments row {row_number}, column {column!r}: {why}")

        lead = row.get("lead_id")
        if not lead:
            raise bad("lead_id", "missing")
        try:
            points = float(row.get("points") or "nan")
        except (TypeError, ValueError):
            raise bad("points", f"not a number: {row.get('points')!r}") from None
        if not math.isfinite(points) or points == 0:
            raise bad("points", "a number other than 0")
        reason = str(row.get("reason") or "").strip()
        if not reason:
            raise bad("reason", "missing")
        times: dict[str, int | None] = {}
        for column in ("at", "expires_at"):
            value = row.get(column)
            if value in (None, ""):
                times[column] = None
                continue
            try:
                times[column] = parse_timestamp(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise bad(column, str(exc)) from None
        at, expires_at = times["at"], times["expires_at"]
        if at is None:
            raise bad("at", "missing")
        model = row.get("model") or None
        adjustment_id = str(row.get("id") or f"adj-{lead}-{n}")
        identity = ("user", str(lead))
        out.append(points_message(adjustment_id, identity, points, reason, at, model,
                                  row.get("by") or None))
        if expires_at is not None:
            out += expiry_messages(adjustment_id, identity, points, reason, at, expires_at,
                                   model, half_lives)
    return out


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV or JSON-lines adjustments file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(text.splitlines()))
