"""The durable scheduler: programs run from the store, by every worker process and host.

- `enrol_from_log` reads the event log since its cursor: a matching event enrols the lead in
  programs entered `on` it; any event makes the lead's active enrolments due now (so exits —
  MQL, unsubscribed — are checked at once). `on_segment_change` enrols on segment entry. On
  PostgreSQL the cursor's row is locked for the transaction (a worker finding it locked skips
  the round), and a gap in the log's seq is waited for while it may still fill.
- `tick` takes due enrolments in batches (`FOR UPDATE SKIP LOCKED` on PostgreSQL: several
  workers never take the same one; SQLite has one writer at a time) and advances a batch in
  one transaction with its journey rows and effects (`programs.due`: the leads' facts read at
  once, the rows written at once): e-mails, webhooks and events to ingest go to
  `program_actions`, sales notifications to the outbox. A crash before the commit loses
  nothing and repeats nothing.
- `deliver` sends those actions: a batch is `claimed` (a lease), then each is marked `sending`
  (committed, if the claim is still this process's) right before its own attempt and `sent`
  after it. After a crash, claimed actions go back to `pending` (never attempted: nothing is
  lost); an e-mail found still `sending` is marked `unknown` and never sent again (at most once;
  at most one per process is in doubt). Webhooks and ingests are retried (the receiver and
  `messageId` deduplicate).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, or_, select, update

from leadscore.addresses import check_address, header_text
from leadscore.alerts.backoff import Backoff
from leadscore.alerts.webhook import post_signed
from leadscore.events import event_from_message
from leadscore.ingest.history import is_news
from leadscore.programs.definition import Program
from leadscore.programs.due import DueBatch
from leadscore.programs.entry import Applies, count_history
from leadscore.programs.links import Links
from leadscore.programs.mailing import Mailer, TokenBucket, program_email
from leadscore.programs.runner import Action, Enrolment, advance
from leadscore.programs.tracking import track_html, track_text
from leadscore.segments.evaluate import LeadFacts
from leadscore.segments.live import Change, identity_key, leads_by_identity
from leadscore.store.leads import EVENT_TYPES, read_after
from leadscore.store.lifecycle import (
    actions,
    enrolments,
    journeys,
    lifecycle_cursor,
    unsubscribes,
)
from leadscore.store.schema import events as events_table
from leadscore.timeutil import US_PER_SECOND, iso, now_us

if TYPE_CHECKING:
    from leadscore.service import Service
    from leadscore.store.database import Database

log = logging.getLogger("leadscore.programs")
CURSOR = "programs"
# Log rows per enrolment transaction: it holds the write lock (SQLite's only one), and after
# a burst of events 5,000 rows held it ~1 s — a stall for every request meanwhile (200: ~15 ms).
ENROL_CHUNK = 200
# Without programs a chunk only moves the cursor, whatever its size (its rows are read before
# the write transaction): fewer, larger ones.
CURSOR_CHUNK = 5000
KEEPER_LOCK = 0x1EAD5E65      # one segment keeper at a time on a shared PostgreSQL
Past = dict[tuple[str, str], list[tuple[str, int]]]
LEASE_US = 60_000_000
MAX_FAILURES = 5              # an enrolment failing this often in a row exits as `error`
# An enrolment whose step failed is due again after a minute, doubling, at most a day.
PUT_OFF = Backoff(60.0, 86_400.0)


class Scheduler:
    """Programs of one service: enrolment, the step runner, and delivery."""

    def __init__(self, service: Service, programs: Sequence[Program], *,
                 content: list[dict[str, Any]] | None = None, mailer: Mailer | None = None,
                 emails_per_week: int | None = 3, batch: int = 200,
                 lease_seconds: float = LEASE_US / 1_000_000, max_attempts: int = 10,
                 emails_per_hour: int | None = None, email_rate: float = 0.0,
                 double_opt_in: bool = False, enrol_max_age_hours: float | None = 24.0):
        # A program written `enabled: false` is listed (funnel, dashboard) but never runs.
        self.service = service
        self.programs = {p.name: p for p in programs if p.enabled}
        self.enrol_max_age_hours = enrol_max_age_hours
        self.skipped_history = 0
        self.warned_no_smtp = False
        self.content = content or []
        self.mailer = mailer or Mailer(None)
        self.emails_per_week = emails_per_week
        self.batch = batch
        self.lease_us = int(lease_seconds * 1_000_000)
        self.max_attempts = max_attempts      # failed this often: a dead letter
        self.emails_per_hour = emails_per_hour or None
        self.double_opt_in = double_opt_in
        self.rate = TokenBucket(email_rate) if email_rate > 0 else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backoff = Backoff(2.0, 3600.0)
        self._insert_enrolment = service.db.insert(enrolments).on_conflict_do_nothing()
        self._warned: set[str] = set()

    def paused(self) -> str | None:
        """Why program e-mail cannot be made now (sends wait, unexecuted; warned once)."""
        reason = None if self.mailer.secret else (
            "no link_secret configured (LEADSCORE_LINK_SECRET; `leadscore init` writes one): "
            "program e-mails wait")
        if reason is not None:
            self._warn(reason)
        return reason

    def _warn(self, reason: str) -> None:
        """One warning per reason and process, not a line per attempt."""
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning(reason)

    # ---- enrolment

    def enrol(self, connection: Connection, program: Program, lead_id: str, at: int,
              now: int, past: Past | None = None, applies: Applies | None = None
              ) -> str | None:
        """Enrol a lead (unless its model does not apply to it, it is active already, or
        re-entry forbids it); the enrolment id. `past`: the enrolments of the leads concerned,
        read at once (`_past`), kept current; `applies`: this transaction's `Applies`."""
        if applies is None:
            applies = self.applies(connection)
        if not applies(connection, program.model, lead_id):
            return None           # the program's model is not for this lead
        if past is None:
            past = self._past(connection, [(program, lead_id)])
        mine = past.setdefault((program.name, lead_id), [])
        if any(status == "active" for status, _ in mine):
            return None
        if mine:
            last = max(entered for _, entered in mine)
            if program.re_enter_after_us is None or at < last + program.re_enter_after_us:
                return None
        number = len(mine) + 1
        enrolment_id = f"{program.name}|{lead_id}|{number}"
        result = connection.execute(self._insert_enrolment, {
            "id": enrolment_id, "program": program.name, "lead_id": lead_id, "number": number,
            "status": "active", "step": 0, "executed": 0, "due_at": now,
            "state": {"step_times": {}}, "entered_at": at, "updated_at": now,
            "exit_reason": None})
        if not result.rowcount:
            return None
        mine.append(("active", at))
        return enrolment_id

    def applies(self, connection: Connection) -> Applies:
        """`applies_to` of the active models, for the leads of this transaction."""
        return Applies([m.model for m in self.service.active_models(connection)])

    def _past(self, connection: Connection, wanted: Sequence[tuple[Program, str]]) -> Past:
        """(program, lead) → its enrolments' (status, entered_at), in one statement."""
        leads = {lead_id for _, lead_id in wanted}
        past: Past = {}
        if leads:
            for row in connection.execute(select(
                    enrolments.c.program, enrolments.c.lead_id, enrolments.c.status,
                    enrolments.c.entered_at).where(
                    enrolments.c.lead_id.in_(leads),
                    enrolments.c.program.in_({p.name for p, _ in wanted}))):
                past.setdefault((row.program, row.lead_id), []).append(
                    (row.status, row.entered_at))
        return past

    def on_segment_change(self, connection: Connection, changes: list[Change]) -> None:
        """SegmentKeeper hook: enrol leads entering a program's segment (same transaction)."""
        now = now_us()
        applies = self.applies(connection)
        for change in changes:
            if change.kind != "entered":
                continue
            for program in self.programs.values():
                if program.enter_segment == change.segment:
                    self.enrol(connection, program, change.lead_id, change.at, now,
                               applies=applies)

    def enrol_from_log(self, now: int | None = None, limit: int | None = None) -> int:
        """Enrol on events since the cursor; wake the enrolments of every lead concerned.
        `limit` log rows per transaction (default `ENROL_CHUNK`; `CURSOR_CHUNK` without
        programs), until the cursor has caught up."""
        if limit is None:
            limit = ENROL_CHUNK if self.programs else CURSOR_CHUNK
        entered, full = 0, True
        while full and not self._stop.is_set():
            done, full = self._enrol_chunk(now, limit)
            entered += done
        return entered

    def _enrol_chunk(self, now: int | None, limit: int) -> tuple[int, bool]:
        """One transaction of `enrol_from_log`: how many entered, and whether it read a full
        chunk (more may follow).

        The log rows are read before it, in a read transaction: on SQLite the write
        transaction holds the only write lock, which every request waits for (reading 200
        rows there was most of a chunk's ~9 ms under it, ~5 ms per 100 events ingested). It
        goes on only if the cursor is still where they were read from. Without programs it
        only moves the cursor: no enrolment can enter, none is due."""
        when = now_us() if now is None else now
        db = self.service.db
        entering = [p for p in self.programs.values() if p.enter_event is not None]
        # The messages are decoded only where a program enters on an event.
        columns = [events_table.c.user_id, events_table.c.anonymous_id, events_table.c.type,
                   events_table.c.timestamp, events_table.c.received_at,
                   events_table.c.filtered, *([events_table.c.message] if entering else [])]
        with db.read() as connection:
            chunk = read_after(db, connection, CURSOR, columns, limit)
        position, rows, full, last = chunk.position, chunk.rows, chunk.full, chunk.last
        if not rows:
            return 0, False

        def work(connection: Connection) -> tuple[int, bool]:
            if self._take_cursor(connection) != position:
                return 0, False         # another worker read these rows meanwhile
            entered = 0
            if self.programs:
                entered = self._enrol_rows(connection, rows, entering, when)
            db.upsert(connection, lifecycle_cursor, {"name": CURSOR,
                                                     "position": rows[-1].seq}, ("name",))
            return entered, full and rows[-1].seq == last

        return db.write(work)

    def _enrol_rows(self, connection: Connection, rows: Sequence[Any],
                    entering: list[Program], when: int) -> int:
        """Enrol on the events of these log rows; wake the enrolments of their leads."""
        owners = leads_by_identity(connection, rows)
        found: list[tuple[Program, str, int]] = []
        applies = self.applies(connection)
        history = 0
        for row in rows:
            lead = owners.get(identity_key(row))
            if not entering or lead is None or row.type not in EVENT_TYPES or row.filtered:
                continue            # a filtered event (a bot, our own staff) enrols no one
            if not is_news(row.message, row.timestamp, row.received_at,
                           self.enrol_max_age_hours):
                history += 1      # scored, but enrols no one (see programs.entry)
                continue
            event = event_from_message({**row.message, "userId": lead,
                                        "timestamp": row.timestamp})
            found += [(program, lead, row.timestamp) for program in entering
                      if program.enter_event is not None
                      and program.enter_event.matches(event)]
        past = self._past(connection, [(program, lead) for program, lead, _ in found])
        entered = sum(self.enrol(connection, program, lead, at, when, past, applies)
                      is not None for program, lead, at in found)
        if history:
            count_history(self.service.db, connection, history)
            self.skipped_history += history
        touched = set(owners.values())
        if touched:
            connection.execute(update(enrolments).where(
                enrolments.c.status == "active", enrolments.c.lead_id.in_(touched),
                enrolments.c.due_at > when).values(due_at=when))
        return entered

    def _take_cursor(self, connection: Connection) -> int | None:
        """The log position enrolment has read up to. On PostgreSQL its row is locked for the
        transaction, or None if another worker holds it (that one reads the same events)."""
        db = self.service.db
        query = select(lifecycle_cursor.c.position).where(lifecycle_cursor.c.name == CURSOR)
        if db.dialect != "postgresql":
            return connection.execute(query).scalar() or 0
        connection.execute(db.insert(lifecycle_cursor).values(
            name=CURSOR, position=0).on_conflict_do_nothing())
        row = connection.execute(query.with_for_update(skip_locked=True)).first()
        return None if row is None else int(row.position)

    # ---- running steps

    def tick(self, now: int | None = None) -> int:
        """Advance due enrolments (one batch per transaction) until none is due; return the
        number of steps executed."""
        total = 0
        while not self._stop.is_set():
            try:
                done, steps = self.service.db.write(lambda c: self._tick(c, now))
            except Exception:
                # One enrolment that cannot advance must not hold up every other one behind
                # it (it is first again at each round): run this batch's one at a time.
                log.exception("a batch of program steps failed; running it one by one")
                done, steps = self._one_by_one(now)
            total += steps
            if steps:
                log.info("program steps run", extra={"enrolments": done, "steps": steps})
            if done < self.batch:
                break
        return total

    def _one_by_one(self, now: int | None) -> tuple[int, int]:
        """The due batch, one enrolment per transaction; one that fails again is put off
        (`_put_off`). Returns what `_tick` does."""
        when = now_us() if now is None else now
        with self.service.db.read() as connection:
            ids = list(connection.execute(self._due(when).with_only_columns(
                enrolments.c.id)).scalars())
        steps = 0
        for enrolment_id in ids:
            def alone(connection: Connection, only: str = enrolment_id) -> tuple[int, int]:
                return self._tick(connection, now, only=only)

            try:
                steps += self.service.db.write(alone)[1]
            except Exception as exc:
                log.exception("program enrolment failed", extra={"enrolment": enrolment_id})

                def put_off(connection: Connection, only: str = enrolment_id,
                            error: Exception = exc) -> None:
                    _put_off(connection, only, error, when)

                self.service.db.write(put_off)
        return len(ids), steps

    def _due(self, when: int) -> Any:
        return select(enrolments).where(
            enrolments.c.status == "active", enrolments.c.due_at <= when,
            enrolments.c.program.in_(list(self.programs))).order_by(
            enrolments.c.due_at).limit(self.batch)

    def _tick(self, connection: Connection, now: int | None, only: str | None = None
              ) -> tuple[int, int]:
        when = now_us() if now is None else now
        query = self._due(when)
        if only is not None:
            query = query.where(enrolments.c.id == only)
        if self.service.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = connection.execute(query).all()
        if not rows:
            return 0, 0
        batch = DueBatch(self, connection, [row.lead_id for row in rows], when)
        steps = 0
        for row in rows:
            program = self.programs[row.program]
            enrolment = Enrolment(row.id, row.program, row.lead_id, row.entered_at, row.step,
                                  row.executed, dict(row.state), row.status, row.exit_reason)
            for key in ("failures", "error"):    # it advances: `_put_off`'s count restarts
                enrolment.state.pop(key, None)
            found, due = advance(program, enrolment, batch.context(program), when)
            for action in found:
                batch.record(program, action)
            steps += len(found)
            batch.move(enrolment, due)
        batch.flush()
        return len(rows), steps

    def render(self, program: Program, action: Action, effect: dict[str, Any]
               ) -> dict[str, Any]:
        facts: LeadFacts = effect["facts"]
        links = Links(self.mailer.public_url, self.mailer.secret or "", action.lead_id,
                      action.key, program.name, action.at / US_PER_SECOND)
        content = effect.get("content")
        unsubscribe, pixel = links.unsubscribe, links.pixel      # each one signs a token
        context = {"lead": {"id": action.lead_id, "traits": dict(facts.traits)},
                   "traits": dict(facts.traits), "score": dict(facts.score or {}),
                   "interests": dict(facts.interests), "content": content,
                   "link": links.link, "unsubscribe_url": unsubscribe}
        assert program.templates is not None
        subject, text, html = program.templates.render(effect["template"], context)
        # Every http(s) link tracked (`data-track="no"` opts one out); `link()`'s already are.
        tracked = f"{links.base}/t/"
        text = track_text(text, links.link, tracked, content)
        if html is not None:
            html = track_html(html, links.link, tracked, content)
        text = text.rstrip("\n") + f"\n\n--\nUnsubscribe: {unsubscribe}\n"
        if html is not None:
            html += (f'<p><a href="{unsubscribe}">Unsubscribe</a></p>'
                     f'<img src="{pixel}" width="1" height="1" alt="">')
        # One valid address or none (the runner checked); the subject one line, cut short.
        return {"to": check_address(facts.traits.get("email"))[0],
                "subject": header_text(subject), "text": text,
                "html": html, "template": effect["template"],
                "content": content.get("id") if content else None,
                "unsubscribe": unsubscribe, "pixel": pixel}

    def render_confirmation(self, program: Program, facts: LeadFacts, address: str,
                            key: str, now: int) -> dict[str, Any]:
        """The double opt-in e-mail: the program's `confirm` template if it has one, else a
        plain one; its one link confirms (and a signed unsubscribe link, as every e-mail)."""
        links = Links(self.mailer.public_url, self.mailer.secret or "", facts.lead_id, key,
                      program.name, now / US_PER_SECOND)
        confirm, unsubscribe = links.confirm, links.unsubscribe
        subject, text = "Please confirm your subscription", (
            f"Please confirm that you want our e-mails:\n\n{confirm}\n\n"
            "If you did not ask for them, ignore this message: you will get none.\n")
        assert program.templates is not None
        if program.templates.check("confirm") is None:
            subject, text, _ = program.templates.render("confirm", {
                "traits": dict(facts.traits), "confirm_url": confirm,
                "lead": {"id": facts.lead_id, "traits": dict(facts.traits)}})
        return {"to": address, "subject": header_text(subject),
                "text": text.rstrip("\n") + f"\n\n--\nUnsubscribe: {unsubscribe}\n",
                "html": None, "template": "confirm", "content": None,
                "unsubscribe": unsubscribe, "pixel": None}

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
                                          actions.c.next_attempt_at <= when)
            query = query.order_by(
                actions.c.next_attempt_at).limit(limit)
            if not self.mailer.smtp_url:
                # No SMTP server: e-mails wait, queued (paused), instead of failing and being
                # retried and logged every few seconds; one warning says why.
                query = query.where(actions.c.kind != "email")
                self._warn_no_smtp(connection)
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
        lease = when + self.lease_us            # our claim: no other process's has this
        done = 0
        for row in rows:
            if self._stop.is_set():             # the rest go back to pending after the lease
                break

            def sending(connection: Connection, key: str = row.id) -> bool:
                # Still ours (a slow run may outlast the lease and another worker take the
                # rest): mark it and lease it again for its own attempt.
                return bool(connection.execute(update(actions).where(
                    actions.c.id == key, actions.c.status == "claimed",
                    actions.c.next_attempt_at == lease).values(
                    status="sending", next_attempt_at=now_us() + self.lease_us)).rowcount)

            if row.kind == "email" and self.rate is not None:
                wait = self.rate.take()
                if wait is not None and now_us() + wait * US_PER_SECOND > lease - self.lease_us / 2:
                    # At this rate the rest would outlast the claim: back to pending, due
                    # when a token is.
                    self._release(rows[rows.index(row):], lease, wait)
                    break
                if wait is not None:
                    self._stop.wait(wait)
                    self.rate.take(block=True)
            if not db.write(sending):
                continue
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
                elif row.attempts + 1 >= self.max_attempts:     # row: as before the claim
                    values = {"status": "dead", "last_error": error, "next_attempt_at": None}
                else:
                    delay = self.backoff.delay(row.attempts + 1)
                    values = {"status": "pending", "last_error": error,
                              "next_attempt_at": finished + int(delay * 1_000_000)}
                connection.execute(update(actions).where(actions.c.id == row.id).values(
                    **values))

            db.write(mark)
            done += error is None
            log.info("program action done" if error is None else "program action failed",
                     extra={"action": row.id, "kind": row.kind, "error": error})
        return done

    def _release(self, rows: Sequence[Any], lease: int, wait: float) -> None:
        """Claimed rows not attempted: pending again at `wait` seconds (the claim did not
        count as an attempt)."""
        def work(connection: Connection) -> None:
            connection.execute(update(actions).where(
                actions.c.id.in_([r.id for r in rows]), actions.c.status == "claimed",
                actions.c.next_attempt_at == lease).values(
                status="pending", attempts=actions.c.attempts - 1,
                next_attempt_at=now_us() + round(wait * US_PER_SECOND)))

        self.service.db.write(work)
    def _warn_no_smtp(self, connection: Connection) -> None:
        if self.warned_no_smtp:
            return
        waiting = connection.execute(select(func.count()).select_from(actions).where(
            actions.c.kind == "email", actions.c.status == "pending")).scalar() or 0
        if waiting:
            self.warned_no_smtp = True
            log.warning("program e-mails are paused: no SMTP server is configured "
                        "(smtp_url / LEADSCORE_SMTP_URL); they wait, queued, and go out once "
                        "it is set", extra={"queued": waiting})

    def _perform(self, row: Any) -> None:
        payload = row.payload
        if row.kind == "email":
            message, to = program_email(row.id, payload, self.mailer.sender)
            self.mailer.send(message, to)
        elif row.kind == "webhook":
            body = json.dumps({"id": row.id, "program": row.program, "lead_id": row.lead_id},
                              sort_keys=True).encode()
            response = post_signed(payload["url"], body, str(payload.get("secret", "")),
                                   row.id, timeout=10)
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
                        with exclusive(self.service.db, KEEPER_LOCK) as ours:
                            if ours:
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


def _put_off(connection: Connection, enrolment_id: str, error: Exception, now: int) -> None:
    """An enrolment whose step failed: due again after a growing delay (`PUT_OFF`), the error
    kept in its state; after `MAX_FAILURES` it exits as `error`."""
    row = connection.execute(select(enrolments.c.state, enrolments.c.status).where(
        enrolments.c.id == enrolment_id)).first()
    if row is None or row.status != "active":
        return
    state = dict(row.state)
    failures = int(state.get("failures", 0)) + 1
    state.update(failures=failures, error=f"{type(error).__name__}: {error}"[:500])
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if failures >= MAX_FAILURES:
        values.update(status="exited", exit_reason="error", due_at=None)
    else:
        values["due_at"] = now + round(PUT_OFF.ceiling(failures) * US_PER_SECOND)
    connection.execute(update(enrolments).where(enrolments.c.id == enrolment_id).values(
        **values))


@contextmanager
def exclusive(db: Database, key: int) -> Iterator[bool]:
    """Whether this process may now do a job that one process at a time should: on PostgreSQL
    a session advisory lock taken without waiting and held until the block ends (several
    workers and hosts share the database); on SQLite always (its writers take turns)."""
    if db.dialect != "postgresql":
        yield True
        return
    with db.engine.connect() as connection:
        ours = bool(connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
        connection.commit()
        try:
            yield ours
        finally:
            if ours:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
                connection.commit()


def unsubscribe(service: Service, lead_id: str, source: str, now: int | None = None) -> None:
    when = now_us() if now is None else now

    def work(connection: Connection) -> None:
        connection.execute(service.db.insert(unsubscribes).values(
            lead_id=lead_id, at=when, source=source).on_conflict_do_nothing())

    service.db.write(work)


def retry_action(service: Service, action_id: str, now: int | None = None) -> bool:
    """A dead (or failed) program action is due again with its attempts afresh; False if
    there is no such action in either state."""
    when = now_us() if now is None else now
    return service.db.write(lambda c: bool(c.execute(update(actions).where(
        actions.c.id == action_id, actions.c.status.in_(("dead", "failed"))).values(
        status="pending", attempts=0, next_attempt_at=when)).rowcount))


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


def dead_actions(connection: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Program actions of every kind (e-mail, webhook, ingest) that failed as often as
    allowed: dead letters, newest first, each waiting for a retry by hand."""
    return [{"id": r.id, "kind": r.kind, "lead_id": r.lead_id, "program": r.program,
             "attempts": r.attempts, "last_error": r.last_error,
             "created_at": iso(r.created_at)}
            for r in connection.execute(select(actions).where(
                actions.c.status == "dead").order_by(actions.c.created_at.desc()).limit(limit))]


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
