"""A batch of due enrolments, advanced in one transaction by the live scheduler.

What the runner reads about the batch's leads is loaded at once — their events in one
statement, their saved engine states in one (a read-only `Session`), unsubscribes and past
e-mails in one each — and what the steps record (journey rows, actions, e-mails for the weekly
limit, the enrolments' new positions) is written with one executemany per table at `flush`,
in the same transaction as the claim: a crash before the commit loses and repeats nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError
from sqlalchemy import Connection, bindparam, select, update

from leadscore.addresses import address_hash, check_address
from leadscore.engine.incremental.interests import handoff_interests
from leadscore.ingest.as_json import reason_json
from leadscore.ingest.session import Session
from leadscore.model.interests import ranked
from leadscore.programs.content import pick
from leadscore.programs.definition import Program
from leadscore.programs.runner import Action, Enrolment
from leadscore.segments.evaluate import LeadFacts
from leadscore.segments.live import facts_in
from leadscore.store import outbox, scores
from leadscore.store.leads import events_of_many
from leadscore.store.lifecycle import actions, email_sends, enrolments, journeys, unsubscribes
from leadscore.store.suppressions import optin_state, requested, suppressed
from leadscore.timeutil import iso

if TYPE_CHECKING:
    from leadscore.programs.scheduler import Scheduler

CONFIRM_WAIT_US = 7 * 86_400_000_000     # as long as the confirmation link is valid

# One UPDATE for all the batch's enrolments (executemany); bind names differ from the
# columns', which SQLAlchemy keeps for SET.
_MOVE = update(enrolments).where(enrolments.c.id == bindparam("b_id")).values(
    step=bindparam("b_step"), executed=bindparam("b_executed"),
    state=bindparam("b_state", type_=enrolments.c.state.type),
    status=bindparam("b_status"), exit_reason=bindparam("b_exit_reason"),
    due_at=bindparam("b_due_at"), updated_at=bindparam("b_updated_at"))


class DueBatch:
    """The leads of a batch of due enrolments at `now`, and the effects of their steps."""

    def __init__(self, scheduler: Scheduler, connection: Connection, lead_ids: Sequence[str],
                 now: int):
        service = scheduler.service
        self.scheduler, self.connection, self.now = scheduler, connection, now
        wanted = sorted(set(lead_ids))
        self.events = events_of_many(connection, wanted)
        self.session = Session(service.db, connection, service.active_models(connection),
                               now, write=False)
        self.session.load(wanted)
        self.unsubscribed = set(connection.execute(select(unsubscribes.c.lead_id).where(
            unsubscribes.c.lead_id.in_(wanted))).scalars())
        self.sends: dict[str, dict[str, int]] = {}     # lead → its e-mails' ids and times
        self.received: dict[str, set[str]] = {}        # lead → content ids it was sent
        for key, lead_id, at, content_id in connection.execute(select(
                email_sends.c.id, email_sends.c.lead_id, email_sends.c.at,
                email_sends.c.content_id).where(email_sends.c.lead_id.in_(wanted))):
            self.sends.setdefault(lead_id, {})[key] = at
            if content_id:
                self.received.setdefault(lead_id, set()).add(content_id)
        # By address hash, read when a lead's address is first looked at.
        self.to_address: dict[str, dict[str, int]] = {}
        self.suppressed: dict[str, bool] = {}
        self.optins: dict[str, tuple[int | None, int | None]] = {}
        self._journeys: list[dict[str, Any]] = []
        self._actions: list[dict[str, Any]] = []
        self._emails: list[dict[str, Any]] = []
        self._moves: list[dict[str, Any]] = []

    def context(self, program: Program) -> LiveContext:
        return LiveContext(self, program)

    def address_sends(self, sha: str) -> dict[str, int]:
        """The e-mails sent to an address (whichever lead): id → time."""
        if sha not in self.to_address:
            self.to_address[sha] = dict(self.connection.execute(select(
                email_sends.c.id, email_sends.c.at).where(
                email_sends.c.address_hash == sha)).all())
        return self.to_address[sha]

    def optin(self, sha: str) -> tuple[int | None, int | None]:
        """(requested_at, confirmed_at) of an address (double opt-in)."""
        if sha not in self.optins:
            self.optins[sha] = optin_state(self.connection, [sha]).get(sha, (None, None))
        return self.optins[sha]

    def ask_to_confirm(self, program: Program, facts: LeadFacts, address: str) -> int:
        """Queue the confirmation e-mail of an address (its signed link says yes); when."""
        sha = address_hash(address)
        key = f"optin|{sha[:32]}"
        payload = self.scheduler.render_confirmation(program, facts, address, key, self.now)
        self._actions.append({
            "id": key, "kind": "email", "lead_id": facts.lead_id, "program": program.name,
            "payload": payload, "status": "pending", "attempts": 0,
            "next_attempt_at": self.now, "created_at": self.now, "done_at": None,
            "last_error": None})
        requested(self.scheduler.service.db, self.connection, sha, self.now)
        self.optins[sha] = (self.now, None)
        return self.now

    def is_suppressed(self, sha: str) -> bool:
        if sha not in self.suppressed:
            self.suppressed[sha] = bool(suppressed(self.connection, [sha]))
        return self.suppressed[sha]

    # ---- what the steps record

    def record(self, program: Program, action: Action) -> None:
        self._journeys.append({
            "key": action.key, "enrolment_id": action.key.rsplit("#", 1)[0],
            "program": action.program, "lead_id": action.lead_id, "step": action.step,
            "action": action.action, "at": action.at, "detail": action.detail})
        effect = action.effect
        if effect is None:
            return
        if effect["kind"] == "email":
            self._email(program, action, effect)
        elif effect["kind"] == "handoff":
            self._handoff(program, action, effect)
        else:
            self._action(action, program, effect["kind"],
                         {k: v for k, v in effect.items() if k != "facts"})

    def move(self, enrolment: Enrolment, due: int | None) -> None:
        """The enrolment's new position, written at `flush`."""
        self._moves.append({
            "b_id": enrolment.id, "b_step": enrolment.step, "b_executed": enrolment.executed,
            "b_state": enrolment.state, "b_status": enrolment.status,
            "b_exit_reason": enrolment.exit_reason, "b_due_at": due, "b_updated_at": self.now})

    def flush(self) -> None:
        for table, rows in ((journeys, self._journeys), (actions, self._actions),
                            (email_sends, self._emails)):
            if rows:
                self.connection.execute(table.insert(), rows)
        if self._moves:
            self.connection.execute(_MOVE, self._moves)

    def _action(self, action: Action, program: Program, kind: str, payload: dict[str, Any],
                error: str | None = None) -> None:
        self._actions.append({
            "id": action.key, "kind": kind, "lead_id": action.lead_id, "program": program.name,
            "payload": payload, "status": "pending" if error is None else "failed",
            "attempts": 0, "next_attempt_at": self.now, "created_at": self.now,
            "done_at": None, "last_error": error})

    def _email(self, program: Program, action: Action, effect: dict[str, Any]) -> None:
        error: str | None = None
        try:
            payload = self.scheduler.render(program, action, effect)
        except TemplateError as exc:   # this lead's e-mail fails; the others go on
            payload = {"to": check_address(effect["facts"].traits.get("email"))[0],
                       "subject": None, "template": effect["template"]}
            error = f"template {effect['template']!r}: {type(exc).__name__}: {exc}"
        if error is None and not payload.get("to"):
            error = "the lead has no valid e-mail address"
        self._action(action, program, "email", payload, error)
        content = effect.get("content") or {}
        sha = address_hash(payload["to"]) if payload.get("to") else None
        self._emails.append({
            "id": action.key, "lead_id": action.lead_id, "at": self.now,
            "content_id": content.get("id"),
            "topic": ",".join(content.get("topics") or []) or None, "address_hash": sha})
        # Later enrolments of the batch (other programs, same lead or address) see it.
        self.sends.setdefault(action.lead_id, {})[action.key] = self.now
        if sha is not None:
            self.address_sends(sha)[action.key] = self.now
        if content.get("id"):
            self.received.setdefault(action.lead_id, set()).add(content["id"])

    def _handoff(self, program: Program, action: Action, effect: dict[str, Any]) -> None:
        facts: LeadFacts = effect["facts"]
        outbox.add(self.scheduler.service.db, self.connection, action.key, "handoff",
                   action.lead_id, program.model, {
                       "id": action.key, "type": "handoff", "source": "program",
                       "program": program.name, "step": action.step,
                       "lead_id": action.lead_id, "model": program.model,
                       "at": iso(self.now), "note": effect.get("note"),
                       "traits": dict(facts.traits), **dict(facts.score or {}),
                       **handoff_interests(ranked(dict(facts.interests), None)),
                       "reasons": self._reasons(action.lead_id, program.model)}, self.now)

    def _reasons(self, lead_id: str, model: str | None) -> list[dict[str, Any]]:
        """The lead's score reasons under the program's model (as a lead's handoff has)."""
        scorer = self.session.scorer(lead_id)
        if scorer is None or model is None or model not in scorer.models:
            return []
        score = scorer.score(lead_id, model, as_of=max(self.now, self.session.as_of(lead_id)))
        if score is None:
            return []
        return [reason_json(scores.reason_dict(r)) for r in score.reasons]


class LiveContext:
    """The runner's view of the store for one program's enrolments in a `DueBatch`."""

    def __init__(self, batch: DueBatch, program: Program):
        self.batch, self.program = batch, program
        scheduler = batch.scheduler
        # The program's model as the batch's transaction has it.
        active = batch.session.models.get(program.model or "")
        self.timezone = active.model.timezone if active is not None else "UTC"
        self.emails_per_week: int | None = scheduler.emails_per_week
        self.emails_per_hour: int | None = scheduler.emails_per_hour

    def facts(self, lead_id: str, model: str | None, now: int) -> LeadFacts:
        batch = self.batch
        return facts_in(batch.scheduler.service, batch.connection, lead_id, model, now,
                        batch.events.get(lead_id), batch.session if now == batch.now else None)

    def paused(self) -> str | None:
        return self.batch.scheduler.paused()

    def unsubscribed(self, lead_id: str, facts: LeadFacts) -> bool:
        """Unsubscribed by lead id (before schema version 7) or suppressed by address. An
        `Unsubscribed` event alone does not count: anyone with the public write key can send
        one (trusted keys' ones are turned into suppressions by the API)."""
        address = check_address(facts.traits.get("email"))[0]
        return lead_id in self.batch.unsubscribed or (
            address is not None and self.batch.is_suppressed(address_hash(address)))

    def address_problem(self, facts: LeadFacts) -> str | None:
        return check_address(facts.traits.get("email"))[1]

    def unconfirmed(self, facts: LeadFacts, now: int) -> int | None:
        if not self.batch.scheduler.double_opt_in:
            return None
        address = check_address(facts.traits.get("email"))[0]
        if address is None:
            return None
        requested, confirmed = self.batch.optin(address_hash(address))
        if confirmed is not None:
            return None
        if requested is None:       # ask once per address; the answer wakes the enrolment
            requested = self.batch.ask_to_confirm(self.program, facts, address)
        return requested + CONFIRM_WAIT_US

    def emails_since(self, facts: LeadFacts, since: int) -> list[int]:
        """The lead's e-mails and its address's (under any lead id), by id once each."""
        sent = dict(self.batch.sends.get(facts.lead_id, {}))
        address = check_address(facts.traits.get("email"))[0]
        if address is not None:
            sent.update(self.batch.address_sends(address_hash(address)))
        return [at for at in sent.values() if at >= since]

    def received(self, lead_id: str) -> set[str]:
        return set(self.batch.received.get(lead_id, ()))

    def pick_content(self, facts: LeadFacts, received: set[str]) -> dict[str, Any] | None:
        stage = facts.score.get("stage") if facts.score else None
        return pick(self.batch.scheduler.content, dict(facts.interests), stage, received)
