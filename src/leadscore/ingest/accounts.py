"""Accounts scored in the transaction of the change: a `Session`'s part for accounts.

What a transaction changed — leads' events (their engagement), traits or account (their link),
accounts' traits (fit, and the leads a `domain` links) — touches accounts; at the session's
flush each touched account is scored under every model with an `account:` section, from the
engine state of all its leads (those changed here as they are now; the others as saved), and
saved. An upward crossing of `mqa` writes an account handoff to the outbox in the same
transaction, once per crossing: the crossing number is saved with the score and is part of
the handoff's id, as for a lead. Concurrent writers (PostgreSQL) take a transaction-scoped
lock per account, in id order and after their leads' locks, so the last writer of an account
sees every other's committed leads (READ COMMITTED) and a crossing is counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from leadscore.engine.incremental import Scorer
from leadscore.engine.incremental.accounts import handoff_id, score_account
from leadscore.events import Event
from leadscore.ingest.as_json import event_json, reason_json
from leadscore.model.accounts import CompiledAccount, compile_account
from leadscore.sales.assign import route
from leadscore.scores import AccountScore
from leadscore.store import accounts as account_store
from leadscore.store import outbox
from leadscore.store.scores import reason_dict
from leadscore.timeutil import iso

if TYPE_CHECKING:
    from leadscore.ingest.session import Session

PEOPLE_IN_HANDOFF = 50      # the most engaged; `leads` says how many there are
KIND = "account_handoff"


class AccountWork:
    """The accounts a session's changes touch, scored at its flush."""

    def __init__(self, session: Session):
        self.session = session
        self.relink: set[str] = set()       # leads whose traits, account or existence changed
        self.changed: set[str] = set()      # accounts whose traits changed
        self.events: dict[str, Event] = {}  # each lead's latest event in this session

    @property
    def models(self) -> dict[str, CompiledAccount]:
        """The session's models that score accounts."""
        found = {}
        for name, active in self.session.models.items():
            compiled = compile_account(active.model)
            if compiled is not None:
                found[name] = compiled
        return found

    def flush(self, dirty: Iterable[str], *, score: bool = True) -> None:
        """Relink the leads and domains changed; score the accounts touched (`score`)."""
        session = self.session
        db, connection = session.db, session.connection
        changed = account_store.traits(connection, self.changed)
        relink = self.relink | account_store.set_domains(db, connection, changed)
        touched = account_store.relink(db, connection, relink) | self.changed
        self.relink, self.changed = set(), set()
        if score and self.models:
            touched |= set(account_store.accounts_of(connection, dirty).values())
            self.score(touched)
        self.events = {}

    def score(self, account_ids: Iterable[str]) -> list[str]:
        """Score and save the accounts now; return the ids of the handoffs written."""
        session, models = self.session, self.models
        wanted = sorted(set(account_ids))
        if not wanted or not models:
            return []
        db, connection = session.db, session.connection
        if db.dialect == "postgresql":
            for account_id in wanted:
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                                   {"k": f"leadscore account:{account_id}"})
        saved = account_store.saved(connection, wanted, models)
        people = account_store.members(connection, wanted)
        traits = account_store.traits(connection, wanted)
        # The saved states of the leads not changed here; of all the leads of an account saved
        # as an MQA (whether it still was one just before this change, decay included).
        mqas = {a for (a, _), row in saved.items() if row.mqa}
        reader = session.reader()
        reader.load({lead for account_id, found in people.items() for lead in found
                     if account_id in mqas or session.loaded(lead) is None})
        rows, written = [], []
        for account_id in wanted:
            members = people[account_id]
            # Never before the latest event of one of its leads, as `AccountScorer`.
            as_of = max([session.now, *(t for lead in members
                                        for t in (session.latest(lead), reader.latest(lead))
                                        if t is not None)])
            for name, compiled in sorted(models.items()):
                before = saved.get((account_id, name))
                now = _score(compiled, name, account_id, traits[account_id], members,
                             _current(session, reader), as_of)
                crossings = before.crossings if before is not None else 0
                was = before is not None and before.mqa and _score(
                    compiled, name, account_id, traits[account_id], members,
                    lambda lead: reader.loaded(lead), as_of, light=True).mqa
                if now.mqa and not was:
                    crossings += 1
                    item = handoff_id(account_id, name, crossings, as_of)
                    payload = self.payload(item, now, compiled, traits[account_id], members,
                                           _current(session, reader))
                    routed = route(db, connection, account_id, name, payload, session.now,
                                   kind="account") if session.write else None
                    if routed is not None and outbox.add(db, connection, item, KIND,
                                                         account_id, name, payload,
                                                         session.now):
                        routed.record(db, connection, item, account_id, name, "account",
                                      session.now)
                        written.append(item)
                rows.append(account_store.score_row(now, session.models[name].version,
                                                    crossings, session.now))
        if session.write:
            account_store.save(db, connection, rows)
        session.handoffs.extend(written)
        return written

    def payload(self, item: str, score: AccountScore, compiled: CompiledAccount,
                traits: Mapping[str, Any], members: Mapping[str, str],
                scorer_of: Any) -> dict[str, Any]:
        """The account handoff as delivered: the account now, its people and the reasons."""
        trigger = max((lead for lead in members if lead in self.events),
                      key=lambda lead: (self.events[lead].timestamp, lead), default=None)
        return {
            "id": item, "type": KIND, "account_id": score.account_id, "model": score.model,
            "model_version": self.session.models[score.model].version, "at": iso(score.as_of),
            "traits": dict(traits), **score_json(score, compiled),
            "people": people_json(score, scorer_of, PEOPLE_IN_HANDOFF),
            "lead_id": trigger,
            "event": event_json(self.events.get(trigger)) if trigger else None,
        }


def _current(session: Session, reader: Session) -> Any:
    """A lead's scorer now: the session's where it changed here, else as saved."""
    def scorer_of(lead_id: str) -> Scorer | None:
        found = session.loaded(lead_id)
        return found if found is not None else reader.loaded(lead_id)
    return scorer_of


def _score(compiled: CompiledAccount, name: str, account_id: str, traits: Mapping[str, Any],
           members: Mapping[str, str], scorer_of: Any, as_of: int, *, light: bool = False
           ) -> AccountScore:
    def peek(lead_id: str) -> tuple[float, bool] | None:
        scorer = scorer_of(lead_id)
        return None if scorer is None else scorer.peek(lead_id, name, as_of)

    return score_account(compiled, name, account_id, traits, members, peek,
                         lambda lead_id: scorer_of(lead_id).lead(lead_id), as_of, light=light)


def score_json(score: AccountScore, compiled: CompiledAccount) -> dict[str, Any]:
    """The parts of an account's score the API, the dashboard and handoffs show alike."""
    return {"score": score.score, "fit": score.fit, "engagement": score.engagement,
            "rollup": compiled.rollup, "mqa": score.mqa, "mqa_threshold": compiled.mqa,
            "disqualified": score.disqualified, "disqualify_reason": score.disqualify_reason,
            "roles_engaged": list(score.roles_engaged),
            "roles_missing": list(score.roles_missing), "role_attribute":
                compiled.spec.roles.attribute if compiled.spec.roles else None,
            "leads": score.leads, "engaged_leads": score.engaged_leads,
            "leads_by_group": score.leads_by_group,
            "leads_by_account_id": score.leads_by_account_id,
            "leads_by_domain": score.leads_by_domain,
            "reasons": [_reason(r) for r in score.reasons]}


def people_json(score: AccountScore, scorer_of: Any, limit: int | None = None
                ) -> list[dict[str, Any]]:
    """The account's people, most engaged first, each with their score under its model."""
    out = []
    for lead_id, match, _ in score.members[:limit]:
        scorer = scorer_of(lead_id)
        lead = scorer.score(lead_id, score.model, as_of=score.as_of)
        traits = scorer.lead(lead_id).traits
        out.append({"lead_id": lead_id, "match": match, "email": traits.get("email"),
                    "name": _name(traits), "traits": dict(traits), "score": lead.score,
                    "fit": lead.fit, "engagement": lead.engagement, "grade": lead.grade,
                    "temperature": lead.temperature, "stage": lead.stage, "mql": lead.mql,
                    "disqualified": lead.disqualified})
    return out


def _reason(reason: Any) -> dict[str, Any]:
    return reason_json(reason_dict(reason))


def _name(traits: Mapping[str, Any]) -> str | None:
    first = traits.get("first_name") or traits.get("firstName") or ""
    last = traits.get("last_name") or traits.get("lastName") or ""
    return traits.get("name") or f"{first} {last}".strip() or None


def account_json(session: Session, account_id: str, model: str | None, as_of: int | None
                 ) -> dict[str, Any] | None:
    """An account now (or at `as_of`), scored from its leads' states as `GET /api/accounts/{id}`
    shows it: score, fit, roll-up, roles, MQA, reasons and its people with their scores;
    None where `model` (default: the first, by name, with an `account:` section) has none."""
    connection, models = session.connection, session.accounts.models
    name = model if model is not None else next(iter(sorted(models)), None)
    traits = account_store.traits(connection, [account_id])[account_id]
    out: dict[str, Any] = {"account_id": account_id, "traits": traits,
                           "models": sorted(models), "model": name}
    if name is None or name not in models:
        return None
    members = account_store.members(connection, [account_id])[account_id]
    session.load(members)
    when = max([session.now, *(t for lead in members
                               if (t := session.latest(lead)) is not None)])
    if as_of is not None:
        when = as_of
    score = _score(models[name], name, account_id, traits, members, session.loaded, when)
    saved = account_store.saved(connection, [account_id], [name]).get((account_id, name))
    return {**out, "model_version": session.models[name].version, "as_of": iso(when),
            **score_json(score, models[name]),
            "crossings": saved.crossings if saved is not None else 0,
            "people": people_json(score, session.loaded)}
