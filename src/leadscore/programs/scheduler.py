"""The durable scheduler: programs run from the store.

- `enrol_from_log` reads the event log since its cursor: a matching event enrols the lead in
  programs entered `on` it; any event makes the lead's active enrolments due now (so exits —
  MQL, unsubscribed — are checked at once). `on_segment_change` enrols on segment entry.
- `tick` takes due enrolments (`FOR UPDATE SKIP LOCKED` on PostgreSQL: several workers never
  take the same one) and advances each in one transaction with its journey rows and effects:
  e-mails, webhooks and events to ingest go to `program_actions`, sales notifications to the
  outbox. A crash before the commit loses nothing and repeats nothing.
- `deliver` sends those actions: a batch is `claimed` (a lease), then each e-mail is marked
  `sending` (committed) right before its own SMTP session and `sent` after it. After a crash,
  claimed actions go back to `pending` (never attempted: nothing is lost); an e-mail found
  still `sending` is marked `unknown` and never sent again (at most once; at most one per
  process is in doubt). Webhooks and ingests are retried (the receiver and `messageId`
  deduplicate).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx
from jinja2 import TemplateError
from sqlalchemy import Connection, func, or_, select, update

from leadscore.alerts.backoff import Backoff
from leadscore.events import event_from_message
from leadscore.model.interests import summary
from leadscore.programs.content import pick
from leadscore.programs.definition import Program
from leadscore.programs.links import Links
from leadscore.programs.runner import Action, Enrolment, advance
from leadscore.segments.evaluate import LeadFacts
from leadscore.segments.live import Change, facts_in
from leadscore.store import outbox
from leadscore.store.lifecycle import (
    actions,
    email_sends,
    enrolments,
    journeys,
    lifecycle_cursor,
    unsubscribes,
)
from leadscore.store.schema import events as events_table
from leadscore.timeutil import iso, now_us

if TYPE_CHECKING:
    from leadscore.service import Service

log = logging.getLogger("leadscore.programs")
CURSOR = "programs"
LEASE_US = 60_000_000
UNSUBSCRIBED = "Unsubscribed"


@dataclass
class Mailer:
    """Where program e-mails go and how their links are made."""

    smtp_url: str | None
    sender: str = "leadscore@localhost"
    public_url: str = "http://127.0.0.1:8000"
    secret: str = "change me"
    timeout: float = 10.0

    def send(self, message: EmailMessage) -> None:
        if not self.smtp_url:
            raise OSError("no SMTP server configured (LEADSCORE_SMTP_URL)")
        parts = urlsplit(self.smtp_url)
        smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with smtp_class(parts.hostname or "localhost", parts.port or 25,
                        timeout=self.timeout) as smtp:
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)


class LiveContext:
    """The runner's view of the store, inside one transaction."""

    def __init__(self, scheduler: Scheduler, connection: Connection, program: Program):
        self.scheduler, self.connection, self.program = scheduler, connection, program
        model = scheduler.model_of(program)
        self.timezone = model.timezone if model is not None else "UTC"
        self.emails_per_week: int | None = scheduler.emails_per_week

    def facts(self, lead_id: str, model: str | None, now: int) -> LeadFacts:
        return facts_in(self.scheduler.service, self.connection, lead_id, model, now)

    def unsubscribed(self, lead_id: str, facts: LeadFacts) -> bool:
        if any(e.event == UNSUBSCRIBED and e.type != "page" for e in facts.events):
            return True
        return self.connection.execute(select(unsubscribes.c.lead_id).where(
            unsubscribes.c.lead_id == lead_id)).first() is not None

    def emails_since(self, lead_id: str, since: int) -> list[int]:
        return list(self.connection.execute(select(email_sends.c.at).where(
            email_sends.c.lead_id == lead_id, email_sends.c.at >= since)).scalars())

    def received(self, lead_id: str) -> set[str]:
        return {c for c in self.connection.execute(select(email_sends.c.content_id).where(
            email_sends.c.lead_id == lead_id)).scalars() if c}

    def pick_content(self, facts: LeadFacts, received: set[str]) -> dict[str, Any] | None:
        stage = facts.score.get("stage") if facts.score else None
        return pick(self.scheduler.content, dict(facts.interests), stage, received)


class Scheduler:
    """Programs of one service: enrolment, the step runner, and delivery."""

    def __init__(self, service: Service, programs: Sequence[Program], *,
                 content: list[dict[str, Any]] | None = None, mailer: Mailer | None = None,
                 emails_per_week: int | None = 3, batch: int = 50,
                 lease_seconds: float = LEASE_US / 1_000_000):
        self.service, self.programs = service, {p.name: p for p in programs}
        self.content = content or []
        self.mailer = mailer or Mailer(None)
        self.emails_per_week = emails_per_week
        self.batch = batch
        self.lease_us = int(lease_seconds * 1_000_000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backoff = Backoff(2.0, 3600.0)

    def model_of(self, program: Program) -> Any:
        with self.service._lock:
            active = self.service._models.get(program.model or "")
        return active.model if active is not None else None

    # ---- enrolment

    def enrol(self, connection: Connection, program: Program, lead_id: str, at: int,
              now: int) -> str | None:
        """Enrol a lead (unless active already, or re-entry forbids it); the enrolment id."""
        past = connection.execute(select(enrolments.c.status, enrolments.c.entered_at,
                                         enrolments.c.number).where(
            enrolments.c.program == program.name, enrolments.c.lead_id == lead_id)).all()
        if any(r.status == "active" for r in past):
            return None
        if past:
            last = max(r.entered_at for r in past)
            if program.re_enter_after_us is None or at < last + program.re_enter_after_us:
                return None
        number = len(past) + 1
        enrolment_id = f"{program.name}|{lead_id}|{number}"
        result = connection.execute(self.service.db.insert(enrolments).values(
            id=enrolment_id, program=program.name, lead_id=lead_id, number=number,
            status="active", step=0, executed=0, due_at=now, state={"step_times": {}},
            entered_at=at, updated_at=now, exit_reason=None).on_conflict_do_nothing())
        return enrolment_id if result.rowcount else None

    def on_segment_change(self, connection: Connection, changes: list[Change]) -> None:
        """SegmentKeeper hook: enrol leads entering a program's segment (same transaction)."""
        now = now_us()
        for change in changes:
            if change.kind != "entered":
                continue
            for program in self.programs.values():
                if program.enter_segment == change.segment:
                    self.enrol(connection, program, change.lead_id, change.at, now)

    def enrol_from_log(self, now: int | None = None, limit: int = 5000) -> int:
        """Enrol on events since the cursor; wake the enrolments of every lead concerned."""
        when = now_us() if now is None else now
        db = self.service.db

        def work(connection: Connection) -> int:
            from leadscore.segments.live import _leads_of

            position = connection.execute(select(lifecycle_cursor.c.position).where(
                lifecycle_cursor.c.name == CURSOR)).scalar() or 0
            rows = connection.execute(select(
                events_table.c.seq, events_table.c.user_id, events_table.c.anonymous_id,
                events_table.c.type, events_table.c.message, events_table.c.timestamp).where(
                events_table.c.seq > position).order_by(events_table.c.seq).limit(limit)).all()
            if not rows:
                return 0
            entered = 0
            for row in rows:
                if row.type not in ("track", "page", "screen"):
                    continue
                lead = next(iter(_leads_of(connection, [row])), None)
                if lead is None:
                    continue
                event = event_from_message({**row.message, "userId": lead,
                                            "timestamp": row.timestamp})
                for program in self.programs.values():
                    if program.enter_event is not None and program.enter_event.matches(event):
                        entered += self.enrol(connection, program, lead, row.timestamp,
                                              when) is not None
            touched = _leads_of(connection, rows)
            if touched:
                connection.execute(update(enrolments).where(
                    enrolments.c.status == "active", enrolments.c.lead_id.in_(touched),
                    enrolments.c.due_at > when).values(due_at=when))
            db.upsert(connection, lifecycle_cursor, {"name": CURSOR,
                                                     "position": rows[-1].seq}, ("name",))
            return entered

        return db.write(work)

    # ---- running steps

    def tick(self, now: int | None = None) -> int:
        """Advance due enrolments (one batch per transaction) until none is due; return the
        number of steps executed."""
        total = 0
        while not self._stop.is_set():
            done, steps = self.service.db.write(lambda c: self._tick(c, now))
            total += steps
            if done < self.batch:
                break
        return total

    def _tick(self, connection: Connection, now: int | None) -> tuple[int, int]:
        when = now_us() if now is None else now
        query = select(enrolments).where(
            enrolments.c.status == "active", enrolments.c.due_at <= when,
            enrolments.c.program.in_(list(self.programs))).order_by(
            enrolments.c.due_at).limit(self.batch)
        if self.service.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = connection.execute(query).all()
        steps = 0
        for row in rows:
            program = self.programs[row.program]
            enrolment = Enrolment(row.id, row.program, row.lead_id, row.entered_at, row.step,
                                  row.executed, dict(row.state), row.status, row.exit_reason)
            found, due = advance(program, enrolment, LiveContext(self, connection, program),
                                 when)
            for action in found:
                self._record(connection, program, action, when)
            steps += len(found)
            connection.execute(update(enrolments).where(enrolments.c.id == row.id).values(
                step=enrolment.step, executed=enrolment.executed, state=enrolment.state,
                status=enrolment.status, exit_reason=enrolment.exit_reason, due_at=due,
                updated_at=when))
        return len(rows), steps

    def _record(self, connection: Connection, program: Program, action: Action,
                now: int) -> None:
        connection.execute(journeys.insert().values(
            key=action.key, enrolment_id=action.key.rsplit("#", 1)[0], program=action.program,
            lead_id=action.lead_id, step=action.step, action=action.action, at=action.at,
            detail=action.detail))
        effect = action.effect
        if effect is None:
            return
        db = self.service.db
        if effect["kind"] == "email":
            error: str | None = None
            try:
                payload = self.render(program, action, effect)
            except TemplateError as exc:   # this lead's e-mail fails; the others go on
                payload = {"to": effect["facts"].traits.get("email"), "subject": None,
                           "template": effect["template"]}
                error = f"template {effect['template']!r}: {type(exc).__name__}: {exc}"
            if error is None and not payload.get("to"):
                error = "the lead has no e-mail address"
            connection.execute(actions.insert().values(
                id=action.key, kind="email", lead_id=action.lead_id, program=program.name,
                payload=payload, status="pending" if error is None else "failed",
                attempts=0, next_attempt_at=now, created_at=now, done_at=None,
                last_error=error))
            content = effect.get("content") or {}
            connection.execute(email_sends.insert().values(
                id=action.key, lead_id=action.lead_id, at=now, content_id=content.get("id"),
                topic=",".join(content.get("topics") or []) or None))
        elif effect["kind"] == "handoff":
            facts: LeadFacts = effect["facts"]
            profile = sorted(facts.interests.items(), key=lambda p: (-p[1], p[0]))
            outbox.add(db, connection, action.key, "handoff", action.lead_id, program.model, {
                "id": action.key, "type": "handoff", "source": "program",
                "program": program.name, "step": action.step, "lead_id": action.lead_id,
                "model": program.model, "at": iso(now), "note": effect.get("note"),
                "traits": dict(facts.traits), **{k: v for k, v in (facts.score or {}).items()},
                "interests": profile[:5], "interested_in": summary(profile),
                "reasons": self._reasons(connection, action.lead_id, program.model, now)},
                now)
        else:
            connection.execute(actions.insert().values(
                id=action.key, kind=effect["kind"], lead_id=action.lead_id,
                program=program.name, payload={k: v for k, v in effect.items() if k != "facts"},
                status="pending", attempts=0, next_attempt_at=now, created_at=now,
                done_at=None, last_error=None))

    def _reasons(self, connection: Connection, lead_id: str, model: str | None,
                 now: int) -> list[dict[str, Any]]:
        """The lead's score reasons under the program's model (as a lead's handoff has)."""
        from leadscore.ingest.session import Session, reason_json
        from leadscore.store import scores

        session = Session(self.service.db, connection, self.service._active(connection), now,
                          write=False)
        scorer = session.scorer(lead_id)
        if scorer is None or model is None or model not in scorer.models:
            return []
        score = scorer.score(lead_id, model, as_of=max(now, session.as_of(lead_id)))
        if score is None:
            return []
        return [reason_json(scores.reason_dict(r)) for r in score.reasons]

    def render(self, program: Program, action: Action, effect: dict[str, Any]
               ) -> dict[str, Any]:
        facts: LeadFacts = effect["facts"]
        links = Links(self.mailer.public_url, self.mailer.secret, action.lead_id, action.key,
                      program.name)
        content = effect.get("content")
        context = {"lead": {"id": action.lead_id, "traits": dict(facts.traits)},
                   "traits": dict(facts.traits), "score": dict(facts.score or {}),
                   "interests": dict(facts.interests), "content": content,
                   "link": links.link, "unsubscribe_url": links.unsubscribe}
        assert program.templates is not None
        subject, text, html = program.templates.render(effect["template"], context)
        text = text.rstrip("\n") + f"\n\n--\nUnsubscribe: {links.unsubscribe}\n"
        if html is not None:
            html += (f'<p><a href="{links.unsubscribe}">Unsubscribe</a></p>'
                     f'<img src="{links.pixel}" width="1" height="1" alt="">')
        return {"to": facts.traits.get("email"), "subject": subject, "text": text,
                "html": html, "template": effect["template"],
                "content": content.get("id") if content else None,
                "unsubscribe": links.unsubscribe, "pixel": links.pixel}

    # ---- delivery

    def deliver(self, now: int | None = None, limit: int = 100) -> int:
        """Send due actions; return how many were done."""
        when = now_us() if now is None else now
        db = self.service.db

        def claim(connection: Connection) -> list[Any]:
            # A crash left these mid-way: an e-mail in its SMTP session is in doubt (never
            # resent); claimed ones were never attempted, and other kinds are retried.
            expired = actions.c.next_attempt_at < when
            connection.execute(update(actions).where(
                expired, actions.c.status == "sending", actions.c.kind == "email").values(
                status="unknown", last_error="interrupted while sending: not resent"))
            connection.execute(update(actions).where(
                expired, actions.c.status.in_(("sending", "claimed"))).values(
                status="pending"))
            query = select(actions).where(actions.c.status == "pending",
                                          actions.c.next_attempt_at <= when).order_by(
                actions.c.next_attempt_at).limit(limit)
            if db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            if rows:
                connection.execute(update(actions).where(actions.c.id.in_(
                    [r.id for r in rows])).values(status="claimed",
                                                  next_attempt_at=when + self.lease_us,
                                                  attempts=actions.c.attempts + 1))
            return list(rows)

        rows = db.write(claim)
        done = 0
        for row in rows:
            if row.kind == "email":
                def sending(connection: Connection, key: str = row.id) -> None:
                    connection.execute(update(actions).where(actions.c.id == key).values(
                        status="sending"))

                db.write(sending)
            error: str | None = None
            try:
                self._perform(row)
            except Exception as exc:  # every failure is recorded on the action
                error = f"{type(exc).__name__}: {exc}"
            finished = now_us()

            def mark(connection: Connection, row: Any = row, error: str | None = error,
                     finished: int = finished) -> None:
                if error is None:
                    values: dict[str, Any] = {"status": "sent", "done_at": finished,
                                              "last_error": None}
                else:
                    delay = self.backoff.delay(row.attempts + 1)
                    values = {"status": "pending", "last_error": error,
                              "next_attempt_at": finished + int(delay * 1_000_000)}
                connection.execute(update(actions).where(actions.c.id == row.id).values(
                    **values))

            db.write(mark)
            done += error is None
        return done

    def _perform(self, row: Any) -> None:
        payload = row.payload
        if row.kind == "email":
            message = EmailMessage()
            message["From"] = self.mailer.sender
            message["To"] = payload["to"]
            message["Subject"] = payload["subject"]
            message["Date"] = formatdate(localtime=False)
            message["Message-ID"] = f"<{hashlib.sha256(row.id.encode()).hexdigest()[:32]}" \
                                    "@leadscore>"
            message["X-Leadscore-Email"] = row.id
            message["List-Unsubscribe"] = f"<{payload['unsubscribe']}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            message.set_content(payload["text"])
            if payload.get("html"):
                message.add_alternative(payload["html"], subtype="html")
            self.mailer.send(message)
        elif row.kind == "webhook":
            body = json.dumps({"id": row.id, "program": row.program, "lead_id": row.lead_id},
                              sort_keys=True).encode()
            signature = hmac.new(str(payload.get("secret", "")).encode(), body,
                                 hashlib.sha256).hexdigest()
            response = httpx.post(payload["url"], content=body, timeout=10, headers={
                "Content-Type": "application/json", "X-Leadscore-Delivery": row.id,
                "X-Leadscore-Signature": f"sha256={signature}"})
            if not 200 <= response.status_code < 300:
                raise OSError(f"HTTP {response.status_code}")
        elif row.kind == "ingest":
            result = self.service.ingest([{**payload["message"], "userId": row.lead_id,
                                           "messageId": row.id}])
            if result.rejected:
                raise ValueError(result.rejected[0].message)

    # ---- running in the background

    def run_once(self, now: int | None = None) -> int:
        self.enrol_from_log(now)
        steps = self.tick(now)
        self.deliver(now)
        return steps

    def start(self, poll_seconds: float = 1.0,
              keeper: Any = None, sweep_seconds: float = 3600.0) -> Scheduler:
        """Run (segment refresh,) enrolment, steps and delivery in a thread until `stop`."""
        def loop() -> None:
            last_sweep = 0.0
            import time

            while not self._stop.is_set():
                try:
                    if keeper is not None:
                        keeper.refresh()
                        if time.monotonic() - last_sweep > sweep_seconds:
                            keeper.sweep()
                            last_sweep = time.monotonic()
                    self.run_once()
                except Exception:  # keep running; the next round retries
                    log.exception("scheduler round failed")
                self._stop.wait(poll_seconds)

        self._thread = threading.Thread(target=loop, name="programs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def unsubscribe(service: Service, lead_id: str, source: str, now: int | None = None) -> None:
    when = now_us() if now is None else now

    def work(connection: Connection) -> None:
        connection.execute(service.db.insert(unsubscribes).values(
            lead_id=lead_id, at=when, source=source).on_conflict_do_nothing())

    service.db.write(work)


def journey_rows(connection: Connection, program: str | None = None,
                 lead_id: str | None = None, limit: int = 500, offset: int = 0
                 ) -> list[dict[str, Any]]:
    query = select(journeys)
    if program is not None:
        query = query.where(journeys.c.program == program)
    if lead_id is not None:
        query = query.where(journeys.c.lead_id == lead_id)
    query = query.order_by(journeys.c.at, journeys.c.key).limit(limit).offset(offset)
    return [{"lead_id": r.lead_id, "program": r.program, "step": r.step, "action": r.action,
             "at": iso(r.at), "detail": r.detail} for r in connection.execute(query)]


def funnel(connection: Connection, program: Program) -> dict[str, Any]:
    """Entered, reached each step, exited by reason, handed to sales."""
    entered = connection.execute(select(func.count()).select_from(enrolments).where(
        enrolments.c.program == program.name)).scalar() or 0
    reached = {str(step): int(n) for step, n in connection.execute(select(
        journeys.c.step, func.count(func.distinct(journeys.c.enrolment_id))).where(
        journeys.c.program == program.name, journeys.c.action != "exit").group_by(
        journeys.c.step))}
    exits = {str(reason): int(n) for reason, n in connection.execute(select(
        enrolments.c.exit_reason, func.count()).where(
        enrolments.c.program == program.name, enrolments.c.exit_reason.is_not(None)).group_by(
        enrolments.c.exit_reason))}
    sales = connection.execute(select(func.count()).select_from(journeys).where(
        journeys.c.program == program.name, journeys.c.action == "notify_sales",
        or_(journeys.c.detail.is_(None), ~journeys.c.detail.startswith("skipped")))).scalar()
    return {"program": program.name, "entered": int(entered),
            "steps": [{"step": s.id, "reached": int(reached.get(s.id, 0))}
                      for s in program.steps],
            "exited": {str(k): int(v) for k, v in exits.items()},
            "handed_to_sales": int(sales or 0)}


def outbox_view(connection: Connection, status: str | None = None, limit: int = 50,
                offset: int = 0) -> list[dict[str, Any]]:
    """Program e-mails, newest first (the dashboard's outbox view)."""
    query = select(actions).where(actions.c.kind == "email")
    if status is not None:
        query = query.where(actions.c.status == status)
    query = query.order_by(actions.c.created_at.desc()).limit(limit).offset(offset)
    return [{"id": r.id, "lead_id": r.lead_id, "program": r.program, "status": r.status,
             "to": r.payload.get("to"), "subject": r.payload.get("subject"),
             "template": r.payload.get("template"), "content": r.payload.get("content"),
             "attempts": r.attempts, "last_error": r.last_error,
             "created_at": iso(r.created_at), "sent_at": iso(r.done_at) if r.done_at else None}
            for r in connection.execute(query)]


def lifecycle_folder(settings: Any) -> Path:
    """Where segments/, programs/, templates/ and content.yaml live for a service."""
    if getattr(settings, "lifecycle_dir", None):
        return Path(settings.lifecycle_dir)
    return Path(settings.models_dir).resolve().parent
