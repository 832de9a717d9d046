"""The JSON of a lead, of a score's reasons and of an event, as the API, the dashboard and
handoffs show them (an account's is `ingest.accounts.account_json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leadscore.events import Event
from leadscore.scores import profile_json
from leadscore.store import accounts as account_store
from leadscore.store import leads as lead_store
from leadscore.store.scores import reason_dict
from leadscore.timeutil import iso, parse_timestamp

if TYPE_CHECKING:
    from leadscore.ingest.session import Session

def lead_json(session: Session, lead_id: str, model: str | None, as_of: object
              ) -> dict[str, Any]:
    """A stored lead as `GET /api/leads/{id}` shows it: traits, account, and its score under
    `model` (default: the first model, by name, that applies to it) as of its latest event
    or now (or `as_of`), with reasons and interests — or no score where none applies; and
    per model whether it applies, with the reason where not (`applies`)."""
    connection = session.connection
    row = lead_store.load(connection, lead_id)
    assert row is not None
    link = account_store.link_of(connection, lead_id)
    out: dict[str, Any] = {"lead_id": lead_id, "traits": row.traits,
                           "account_id": row.account_id, "account": row.account,
                           "account_link": link}
    scorer = session.scorer(lead_id)
    if scorer is None:
        return {**out, **no_score(model), "applies": {}}
    when = session.as_of(lead_id) if as_of is None else parse_timestamp(as_of)
    lead = scorer.lead(lead_id)
    why_not = {name: scorer.models[name].why_not(lead) for name in sorted(scorer.models)}
    # Per model whether it scores the lead, and why not (its applies_to and the lead's values).
    out["applies"] = {name: {"applies": why is None, "reason": why}
                      for name, why in why_not.items()}
    applying = [name for name, why in why_not.items() if why is None]
    name = model or (applying[0] if applying else None)
    if name is None or name not in applying:
        return {**out, **no_score(name)}
    score = scorer.score(lead_id, name, as_of=when)
    return {**out, "model": name, "model_version": session.models[name].version,
            "score": score.score, "fit": score.fit, "engagement": score.engagement,
            "grade": score.grade, "temperature": score.temperature,
            "stage": score.stage, "mql": score.mql, "disqualified": score.disqualified,
            "disqualify_reason": score.disqualify_reason,
            "purchases": score.purchases,
            "customer_since": iso(score.customer_since)
            if score.customer_since is not None else None,
            "tenure_days": score.tenure_days, "recency_days": score.recency_days,
            "frequency": score.frequency, "monetary": score.monetary,
            "as_of": iso(score.as_of), "models": applying,
            "reasons": [reason_json(reason_dict(r)) for r in score.reasons],
            "interests": profile_json(score.interests)}


def no_score(model: str | None) -> dict[str, Any]:
    """A lead's score fields where no model scores it."""
    return {"model": model, "model_version": None, "score": None, "fit": None,
            "engagement": None, "grade": None, "temperature": None, "stage": None,
            "mql": None, "disqualified": None, "disqualify_reason": None, "purchases": None,
            "customer_since": None, "tenure_days": None, "recency_days": None,
            "frequency": None, "monetary": None, "as_of": None, "models": [], "reasons": [],
            "interests": []}


def reason_json(reason: dict[str, Any]) -> dict[str, Any]:
    """A reason as `store.scores.reason_dict` gives it, its last event's time as ISO text."""
    last = reason.get("last_at")
    return {**reason, "last_at": iso(last) if last is not None else None}


def event_json(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {"type": event.type, "event": event.event, "path": event.path,
            "timestamp": iso(event.timestamp), "properties": dict(event.properties)}
