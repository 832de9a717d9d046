"""What the API, the dashboard and the CLI do with sales: the routing file, feedback,
adjustments, the audit log, SLAs and exports — over the store and the service's ingest.

Feedback and adjustments are messages in the log (`Lead Accepted`, `Program Points Added` with
`program: adjustment`), scored by the same engines as every event; the store keeps beside
them who did what (the audit log) and what an adjustment is owed at its expiry.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from leadscore.errors import ModelError
from leadscore.sales.adjustments import POINTS_EVENT, expiry_messages, points_message
from leadscore.sales.assign import routing_of
from leadscore.sales.feedback import Feedback, FeedbackError, feedback_message, parse_feedback
from leadscore.sales.routing import Routing, parse_routing
from leadscore.store import audit
from leadscore.store import leads as lead_store
from leadscore.store import sales as store
from leadscore.store.database import Database, NotFound
from leadscore.timeutil import iso, now_us, parse_timestamp

MAX_ADJUSTMENT = 1_000_000.0
RECYCLING = ("recycled", "lost")       # statuses that send a lead back to nurture

Ingest = Callable[[Sequence[Any]], Any]
HalfLives = Callable[[], dict[str, float | None]]


class AdjustmentError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class SalesDesk:
    """Sales' side of one service: `ingest` stores and scores messages, `half_lives` gives
    each active model's engagement half-life (days; None: no decay)."""

    def __init__(self, db: Database, ingest: Ingest, half_lives: HalfLives,
                 get_lead: Callable[..., dict[str, Any]] | None = None):
        self.db, self.ingest, self.half_lives = db, ingest, half_lives
        self.get_lead = get_lead

    # ---- the routing file

    def routing(self) -> Routing:
        with self.db.read() as connection:
            return routing_of(connection)

    def routing_text(self) -> str | None:
        with self.db.read() as connection:
            return store.config_text(connection)

    def put_routing(self, text: str, *, by: str = "admin", file: str = "routing.yaml"
                    ) -> bool:
        """Validate and install a routing file (ModelError: nothing changes); audited."""
        parse_routing(text, file)
        now = now_us()

        def work(connection: Any) -> bool:
            changed = store.put_config(self.db, connection, text, now, by)
            if changed:
                audit.record(connection, now, by, "setting", "routing.yaml",
                             {"chars": len(text)})
            return changed

        return self.db.write(work)

    # ---- feedback

    def feedback(self, lead_id: str, body: Any, *, actor: str = "admin") -> dict[str, Any]:
        """Take sales' verdict on a lead: a feedback event in the log (the stage moves), and
        an audit entry. FeedbackError for a bad body, NotFound for an unknown lead."""
        routing = self.routing()
        verdict = parse_feedback(body, routing.reasons)
        lead, identity = self._identity(lead_id)
        now = now_us()
        message = feedback_message(verdict, identity, iso(now))
        self._ingest_one(message)
        if verdict.status in RECYCLING and routing.recycle == "reset":
            self.reset(lead, now)
        self.db.write(lambda c: audit.record(c, now, verdict.by or actor, "feedback", lead, {
            "status": verdict.status, "reason": verdict.reason, "event": verdict.event,
            "via": actor}))
        return {"ok": True, "lead_id": lead, "status": verdict.status,
                "event": verdict.event, "reason": verdict.reason, "at": iso(now)}

    def after_recycle(self, lead_id: str) -> None:
        """Reset the lead's engagement where routing.yaml says `recycle: reset`."""
        if self.routing().recycle == "reset":
            self.reset(lead_id, now_us())

    def reset(self, lead_id: str, now: int) -> int:
        """Bring a lead's engagement back to 0 under every model that scores it: one
        `Program Points Added` of program `recycled` taking off its engagement now (it decays
        with the model's half-life, so the reset is exact for rules that decay with it too);
        returns the models reset."""
        if self.get_lead is None:
            return 0
        lead, (kind, external) = self._identity(lead_id)
        messages = []
        for model in self.get_lead(lead).get("models") or []:
            engagement = float(self.get_lead(lead, model=model).get("engagement") or 0.0)
            if abs(engagement) < 1e-9 or abs(engagement) > MAX_ADJUSTMENT:
                continue
            messages.append({
                "type": "track", "event": POINTS_EVENT, "timestamp": iso(now),
                "messageId": f"reset-{uuid.uuid4()}",
                ("userId" if kind == "user" else "anonymousId"): external,
                "properties": {"points": -engagement, "program": "recycled",
                               "reason": "score reset", "model": model}})
        if messages:
            self.ingest(messages)
        return len(messages)

    def _identity(self, lead_id: str) -> tuple[str, tuple[str, str]]:
        with self.db.read() as connection:
            lead = lead_store.resolve(connection, str(lead_id))
            identity = None if lead is None else store.identity_of(connection, lead)
        if lead is None or identity is None:
            raise NotFound(f"no lead {lead_id!r}")
        return lead, identity

    def _ingest_one(self, message: dict[str, Any]) -> None:
        result = self.ingest([message])
        rejected = getattr(result, "rejected", [])
        if rejected:
            raise FeedbackError("(message)", rejected[0].message or "rejected")

    # ---- adjustments

    def adjust(self, lead_id: str, body: Any, *, actor: str = "admin") -> dict[str, Any]:
        """A manual change of points with a reason (and an expiry): a `Program Points Added`
        event of program `adjustment`, so it is a reason like any other in every engine; the
        adjustment is stored and audited."""
        points, reason, expires_at, model, by = parse_adjustment(body, now_us())
        if model is not None and model not in self.half_lives():
            raise AdjustmentError("model", f"no active model {model!r}")
        lead, identity = self._identity(lead_id)
        now = now_us()
        adjustment_id = f"adj-{uuid.uuid4()}"
        kind, external = identity
        self._ingest_one(points_message(adjustment_id, identity, points, reason, now, model,
                                        by))

        def work(connection: Any) -> None:
            store.add_adjustment(connection, {
                "id": adjustment_id, "lead_id": lead, "model": model, "points": points,
                "reason": reason, "by": by or actor, "created_at": now,
                "expires_at": expires_at, "expired": 0, "detail": {"identity": [kind,
                                                                                 external]}})
            audit.record(connection, now, by or actor, "adjustment", lead, {
                "id": adjustment_id, "points": points, "reason": reason, "model": model,
                "expires_at": None if expires_at is None else iso(expires_at)})

        self.db.write(work)
        return {"ok": True, "id": adjustment_id, "lead_id": lead, "points": points,
                "reason": reason, "model": model, "by": by or actor, "at": iso(now),
                "expires_at": None if expires_at is None else iso(expires_at)}

    def adjustments(self, lead_id: str | None = None) -> list[dict[str, Any]]:
        with self.db.read() as connection:
            rows = store.adjustments_of(connection, lead_id)
        return [{"id": r["id"], "lead_id": r["lead_id"], "model": r["model"],
                 "points": r["points"], "reason": r["reason"], "by": r["by"],
                 "at": iso(r["created_at"]), "expired": bool(r["expired"]),
                 "expires_at": None if r["expires_at"] is None else iso(r["expires_at"])}
                for r in rows]

    def expire_due(self, now: int | None = None) -> int:
        """Write the expiry of every adjustment due: at its `expires_at`, points that cancel
        what is left of it (decay is memoryless: −p·2^(−(expiry − t)/h) at the expiry, decaying
        from there, equals the adjustment's own points ever after), one per model."""
        when = now_us() if now is None else now
        with self.db.read() as connection:
            due = [r for r in store.adjustments_of(connection)
                   if not r["expired"] and r["expires_at"] is not None
                   and r["expires_at"] <= when]
        half_lives = self.half_lives()
        for row in due:
            kind, external = row["detail"]["identity"]
            messages = expiry_messages(row["id"], (kind, external), row["points"],
                                       row["reason"], row["created_at"], row["expires_at"],
                                       row["model"], half_lives)
            if messages:
                self.ingest(messages)
            self.db.write(partial(_expired, row=row, now=when))
        return len(due)

    # ---- audit

    def audit(self, *, action: str | None = None, target: str | None = None,
              limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        with self.db.read() as connection:
            rows, total = audit.listing(connection, action=action, target=target,
                                        limit=limit, offset=offset)
        return [{"seq": r["seq"], "at": iso(r["at"]), "actor": r["actor"],
                 "action": r["action"], "target": r["target"], "detail": r["detail"]}
                for r in rows], total

    def record(self, actor: str, action: str, target: str | None,
               detail: Mapping[str, Any] | None = None) -> None:
        """An audit entry for a change made elsewhere (a model upload, a forget)."""
        now = now_us()
        self.db.write(lambda c: audit.record(c, now, actor, action, target, dict(detail or {})))


def _expired(connection: Any, row: dict[str, Any], now: int) -> None:
    store.mark_expired(connection, row["id"])
    audit.record(connection, now, "leadscore", "adjustment expired", row["lead_id"],
                 {"id": row["id"]})


def parse_adjustment(body: Any, now: int
                     ) -> tuple[float, str, int | None, str | None, str | None]:
    """(points, reason, expires_at µs, model, by) of a request body; AdjustmentError naming the
    field otherwise."""
    if not isinstance(body, Mapping):
        raise AdjustmentError("(body)", "the body is a JSON object {points, reason, "
                                        "expires_at, model, by}")
    unknown = sorted(set(body) - {"points", "reason", "expires_at", "model", "by"})
    if unknown:
        raise AdjustmentError(unknown[0], f"unknown field {unknown[0]!r}; expected points, "
                                          "reason, expires_at, model, by")
    points = body.get("points")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(
            points) or points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise AdjustmentError("points", "points is a number, not 0, of magnitude at most "
                                        "1,000,000")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise AdjustmentError("reason", "an adjustment needs a reason (a text of at most "
                                        "500 characters)")
    expires_at = None
    if body.get("expires_at") is not None:
        try:
            expires_at = parse_timestamp(body["expires_at"])
        except (ValueError, TypeError, OverflowError) as exc:
            raise AdjustmentError("expires_at", f"not a timestamp: {exc}") from None
        if expires_at <= now:
            raise AdjustmentError("expires_at", "expires_at is in the past")
    for name in ("model", "by"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
            raise AdjustmentError(name, f"{name} is a text of at most 200 characters")
    return float(points), reason.strip(), expires_at, body.get("model"), body.get("by")


__all__ = ["AdjustmentError", "Feedback", "FeedbackError", "ModelError", "SalesDesk"]
