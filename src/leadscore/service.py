"""The scoring service's one API, for the HTTP layer, the CLI and Python users.

>>> service = Service.open("leadscore.db", models_dir="models")        # doctest: +SKIP
>>> service.ingest([{"type": "track", "userId": "ann", "event": "Demo Requested"}])  # +SKIP
>>> service.get_lead("ann")["score"]                                    # doctest: +SKIP

Every accepted message is stored and scored in one transaction; scores are read as of now
(decay applied at read time); model versions, rescoring and the handoff outbox live in the
store, so several processes can share it (PostgreSQL) or one can restart at any moment.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import Connection, select

from leadscore.errors import EventError, ModelError, Problem
from leadscore.ingest.apply import apply
from leadscore.ingest.as_json import reason_json
from leadscore.ingest.session import ActiveModel, Session
from leadscore.ingest.validate import Message, validate
from leadscore.model.loader import load_model, load_models
from leadscore.model.schema import Model
from leadscore.scores import profile_json
from leadscore.store import accounts as account_store
from leadscore.store import leads as lead_store
from leadscore.store import models as model_store
from leadscore.store import outbox
from leadscore.store import scores as score_store
from leadscore.store.database import Database, NotFound, StoreError
from leadscore.store.migrate import migrate
from leadscore.store.outbox import OutboxItem
from leadscore.store.schema import leads as leads_table
from leadscore.timeutil import iso, now_us, parse_timestamp

Progress = Callable[[int, int], None]
RESCORE_BATCH = 200
# At most this many messages of concurrent `ingest` calls share one transaction, and this many
# such transactions of one process run at once: SQLite has one writer at a time anyway, while
# PostgreSQL works on several (each waits for its round trips and its commit).
GROUP_MESSAGES = 1000
GROUP_WRITERS = {"sqlite": 1, "postgresql": 4}

__all__ = ["IngestResult", "MessageResult", "NotFound", "OutboxItem", "Service",
           "StoreError"]


@dataclass(frozen=True)
class MessageResult:
    """What became of one message: accepted, duplicate (its messageId was stored before) or
    rejected (`field` and `message` say why)."""

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    message_id: str | None = None
    lead_id: str | None = None
    field: str | None = None
    message: str | None = None


@dataclass
class _Pending:
    """The valid messages of one `ingest` call waiting for their transaction, then what
    became of them (or the error that stopped them)."""

    messages: list[Message]
    now: int
    done: list[MessageResult] | None = None
    handoffs: list[str] = field(default_factory=list)
    error: BaseException | None = None


@dataclass
class IngestResult:
    results: list[MessageResult]
    handoffs: list[str] = field(default_factory=list)   # ids written to the outbox

    @property
    def accepted(self) -> int:
        return sum(r.status == "accepted" for r in self.results)

    @property
    def duplicates(self) -> int:
        return sum(r.status == "duplicate" for r in self.results)

    @property
    def rejected(self) -> list[MessageResult]:
        return [r for r in self.results if r.status == "rejected"]


class Service:
    """The store, the active models and the work on them. Thread-safe; open one per process."""

    def __init__(self, db: Database):
        self.db = db
        self._lock = threading.Lock()
        self._models: dict[str, ActiveModel] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._closing = threading.Event()
        self._queued = threading.Condition()     # group commit (`_write_pending`)
        self._queue: deque[_Pending] = deque()
        self._writing = 0
        self._writers = GROUP_WRITERS[db.dialect]

    # ---- opening and closing

    @classmethod
    def open(cls, db_url: str | Path | None = None, *, models: Sequence[Model] | None = None,
             models_dir: str | Path | None = None, background: bool = True,
             synchronous: str = "full") -> Service:
        """Open (and migrate) the store; install the given models, each as a new active
        version where its text differs from the active one (then rescored: in a background
        thread, or before returning without `background`). `synchronous`: SQLite's durability
        of a commit, "full" or "normal" (see `leadscore.store.database`)."""
        db = Database(db_url, synchronous=synchronous)
        migrate(db)
        service = cls(db)
        given: list[tuple[Model, str]] = []
        if models_dir is not None:
            files = sorted(p for p in Path(models_dir).iterdir()
                           if p.suffix in (".yaml", ".yml")) if Path(models_dir).is_dir() \
                else []
            if not files:
                raise ModelError([Problem(str(models_dir), None, "(directory)",
                                          "no model file (*.yaml) found")])
            given += [(m, Path(str(m.source)).read_text(encoding="utf-8"))
                      for m in load_models(list(files))]
        given += [(m, model_text(m)) for m in models or ()]
        for model, text in given:
            service._install(model.name, text)
        with db.read() as connection:
            pending = model_store.rescoring(connection)
        for name, version in pending:
            service._start_rescore(name, version, background)
        service._start_accounts({n for n, _ in pending}, background)
        return service

    def close(self) -> None:
        """Stop background rescoring (it resumes at the next open) and close the store."""
        self._closing.set()
        for thread in list(self._threads.values()):
            thread.join()
        self.db.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- ingestion

    def ingest(self, messages: Sequence[Any], *, received_at: int | None = None
               ) -> IngestResult:
        """Validate, store and score Segment messages; the valid ones in one transaction.

        A rejected message costs nothing to the others; a message whose messageId is already
        stored is a duplicate, counted once. `received_at` (µs, default now) clamps
        timestamps slightly in the future and is the time scores are saved at.

        Calls from several threads at once share transactions (group commit, see
        `_write_pending`): each returns once the transaction holding its messages is
        committed."""
        now = now_us() if received_at is None else received_at
        results: list[MessageResult | None] = [None] * len(messages)
        valid: list[Message] = []
        for index, message in enumerate(messages):
            try:
                valid.append(validate(message, index, now))
            except EventError as exc:
                results[index] = MessageResult(index, "rejected", field=exc.field,
                                               message=str(exc))
        handoffs: list[str] = []
        if valid:
            pending = _Pending(valid, now)
            self._write_pending(pending)
            assert pending.done is not None
            handoffs = pending.handoffs
            for result in pending.done:
                results[result.index] = result
        return IngestResult([r for r in results if r is not None], handoffs)

    def _write_pending(self, pending: _Pending) -> None:
        """Group commit: queue the messages; a caller that finds fewer than `GROUP_WRITERS`
        transactions of this process under way writes every call queued (up to
        `GROUP_MESSAGES` messages) in one transaction, while later callers wait for theirs.

        On SQLite each transaction holds the database's only write lock, and its commit (an
        fsync with `synchronous=full`) and fixed statements cost the same for 100 messages as
        for 1,000: shared by the calls waiting anyway, they are paid once. A group that fails
        is written again call by call, so one call's failure is never another's."""
        with self._queued:
            self._queue.append(pending)
            while pending.done is None and pending.error is None:
                if self._writing >= self._writers or not self._queue:
                    self._queued.wait()
                    continue
                self._writing += 1
                group: list[_Pending] = []
                size = 0
                while self._queue and (not group or size + len(self._queue[0].messages)
                                       <= GROUP_MESSAGES):
                    group.append(self._queue.popleft())
                    size += len(group[-1].messages)
                self._queued.release()
                try:
                    self._write_group(group)
                finally:
                    self._queued.acquire()
                    self._writing -= 1
                    self._queued.notify_all()
        if pending.error is not None:
            raise pending.error

    def _write_group(self, group: list[_Pending]) -> None:
        try:
            written = self.db.write(lambda connection: self._apply(connection, group))
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for i, pending in enumerate(group):   # each alone: the failure is the culprit's
                try:
                    self._write_group([pending])
                except BaseException as stop:      # an interrupt: the rest must not wait on
                    for rest in group[i + 1:]:
                        rest.error = stop
                    raise
            return
        except BaseException as exc:
            for pending in group:
                pending.error = exc
            raise
        for pending, (done, handoffs) in zip(group, written, strict=True):
            pending.done, pending.handoffs = done, handoffs

    def _apply(self, connection: Connection, group: list[_Pending]
               ) -> list[tuple[list[MessageResult], list[str]]]:
        """Store and score the messages of `group` in one transaction: each call's messages
        at its own time, the scores saved as of the latest."""
        latest = max(pending.now for pending in group)
        session = Session(self.db, connection, self._active(connection), latest)
        session.prefetch([m for pending in group for m in pending.messages])
        out = []
        for pending in group:
            session.now = pending.now
            done, before = [], len(session.handoffs)
            for message in pending.messages:
                lead_id = apply(session, message)
                done.append(MessageResult(
                    message.index, "accepted" if lead_id is not None else "duplicate",
                    message.message_id, lead_id))
            out.append((done, session.handoffs[before:]))
        session.now = latest
        before = len(session.handoffs)
        session.flush()
        saved = session.handoffs[before:]        # account handoffs: of the group as a whole
        return [(done, [*handoffs, *saved]) for done, handoffs in out]

    def import_events(self, source: Any, *, kind: Literal["auto", "events", "leads"] = "auto",
                      progress: Progress | None = None, batch_size: int = 500) -> Any:
        """Load Segment JSON lines, or events / leads tables (CSV, Parquet, Arrow, pandas),
        through `ingest`; see `leadscore.ingest.files`."""
        from leadscore.ingest.files import import_source

        return import_source(self, source, kind=kind, progress=progress,
                             batch_size=batch_size)

    # ---- leads

    def get_lead(self, lead_id: str, model: str | None = None, *,
                 as_of: object = None) -> dict[str, Any]:
        """A lead's current score under a model (default: the first model, by name, that
        applies to it), decay applied as of now (or `as_of`), with traits, account and
        reasons. A merged-away id, a userId or an anonymousId resolves to its lead."""
        with self.db.read() as connection:
            found = lead_store.resolve(connection, str(lead_id))
            if found is None:
                raise NotFound(f"no lead {lead_id!r}")
            active = self._active(connection)
            if model is not None and model not in {m.name for m in active}:
                raise NotFound(f"no model {model!r}; active: "
                               f"{', '.join(sorted(m.name for m in active)) or '(none)'}")
            row = lead_store.load(connection, found)
            assert row is not None
            link = account_store.link_of(connection, found)
            out: dict[str, Any] = {"lead_id": found, "traits": row.traits,
                                   "account_id": row.account_id, "account": row.account,
                                   "account_link": link}
            session = Session(self.db, connection, active, now_us(), write=False)
            scorer = session.scorer(found)
            if scorer is None:
                return {**out, **_no_score(model)}
            when = session.as_of(found) if as_of is None else parse_timestamp(as_of)
            lead = scorer.lead(found)
            applying = [name for name in sorted(scorer.models)
                        if scorer.models[name].applies(lead)]
            name = model or (applying[0] if applying else None)
            if name is None or name not in applying:
                return {**out, **_no_score(name)}
            score = scorer.score(found, name, as_of=when)
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
                    "reasons": [reason_json(score_store.reason_dict(r))
                                for r in score.reasons],
                    "interests": profile_json(score.interests)}

    def list_leads(self, *, model: str | None = None, grade: str | Sequence[str] | None = None,
                   temperature: str | Sequence[str] | None = None,
                   stage: str | Sequence[str] | None = None, min_score: float | None = None,
                   disqualified: bool | None = None, q: str | None = None,
                   sort: str = "score", descending: bool = True, limit: int = 50,
                   offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Saved scores (as of each lead's last change; `refresh` re-reads them as of now),
        filtered and sorted in SQL, one row per lead and model; and the total matching."""
        with self.db.read() as connection:
            return score_store.list_scores(
                connection, model=model, grade=grade, temperature=temperature, stage=stage,
                min_score=min_score, disqualified=disqualified, q=q, sort=sort,
                descending=descending, limit=limit, offset=offset)

    # ---- accounts

    def get_account(self, account_id: str, model: str | None = None, *,
                    as_of: object = None) -> dict[str, Any]:
        """An account's current score under a model with an `account:` section (default: the
        first by name), from its leads' states as of now (or `as_of`): fit, engagement roll-up,
        roles engaged, MQA, reasons, and its people with their scores."""
        from leadscore.ingest.accounts import account_json

        with self.db.read() as connection:
            if not account_store.exists(connection, str(account_id)):
                raise NotFound(f"no account {account_id!r}")
            session = Session(self.db, connection, self._active(connection), now_us(),
                              write=False)
            found = account_json(session, str(account_id), model,
                                 None if as_of is None else parse_timestamp(as_of))
            if found is None:
                having = ", ".join(sorted(session.accounts.models)) or "(none)"
                raise NotFound(f"no model {model!r} with an `account:` section; these have "
                               f"one: {having}" if model is not None else
                               "no active model has an `account:` section")
            return found

    def list_accounts(self, *, model: str | None = None, min_score: float | None = None,
                      mqa: bool | None = None, q: str | None = None, sort: str = "score",
                      descending: bool = True, limit: int = 50, offset: int = 0
                      ) -> tuple[list[dict[str, Any]], int]:
        """Saved account scores (as of each account's last change), filtered and sorted in
        SQL, one row per account and model; and the total matching."""
        with self.db.read() as connection:
            return account_store.listing(connection, model=model, min_score=min_score,
                                         mqa=mqa, q=q, sort=sort, descending=descending,
                                         limit=limit, offset=offset)

    def account_models(self) -> list[str]:
        """The active models with an `account:` section, by name."""
        with self.db.read() as connection:
            session = Session(self.db, connection, self._active(connection), now_us(),
                              write=False)
            return sorted(session.accounts.models)

    def rescore_accounts(self, model: str | None = None) -> int:
        """Score every account afresh from its leads' states (after its leads were rescored:
        `rescore` does both); an account that is now an MQA and was not gets a handoff."""
        with self.db.read() as connection:
            names = set(model_store.active_versions(connection))
        return self._score_accounts(names if model is None else {model} & names)

    # ---- models

    def models(self) -> list[dict[str, Any]]:
        """The active models: name, version, rescore state and progress."""
        with self.db.read() as connection:
            return [model_store.status(connection, name)
                    for name in sorted(model_store.active_versions(connection))]

    def model(self, name: str, version: int | None = None) -> str:
        """The YAML text of a model's active (or given) version."""
        with self.db.read() as connection:
            return model_store.text_of(connection, name, version)

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        with self.db.read() as connection:
            return model_store.versions(connection, name)

    def model_status(self, name: str) -> dict[str, Any]:
        """{name, version, state: rescoring | ready, done, total, created_at}."""
        with self.db.read() as connection:
            return model_store.status(connection, name)

    def put_model(self, name: str, text: str, *, background: bool = True) -> int:
        """Validate a model's YAML and make it the active version of `name` (the same text as
        the active version: nothing changes); every lead is then rescored from the event log.
        Raises ModelError (the running version stays) if it does not validate."""
        model = load_model(f"{name}.yaml", text=text)
        if model.name != name:
            raise ModelError([Problem(f"{name}.yaml", _name_line(text), "name",
                                      "the model's name differs from the name it is uploaded "
                                      "as", model.name, repr(name))])
        version, changed = self._install(name, text)
        if changed:
            self._start_rescore(name, version, background)
        return version

    def restore_model(self, name: str, version: int, *, background: bool = True) -> int:
        """Make an older version active again (and rescore)."""
        def work(connection: Connection) -> None:
            model_store.activate(connection, name, version)

        self.db.write(work)
        self._start_rescore(name, version, background)
        return version

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background rescoring to finish."""
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def _install(self, name: str, text: str) -> tuple[int, bool]:
        """Make `text` the active version of `name` unless the active one is the same model
        (the same text, or the same rules written differently)."""
        wanted = load_model(f"{name}.yaml", text=text).model_dump()

        def work(connection: Connection) -> tuple[int, bool]:
            current = model_store.active(connection).get(name)
            if current is not None and (current[1] == text or load_model(
                    f"{name}.yaml", text=current[1]).model_dump() == wanted):
                return current[0], False
            return model_store.add(connection, name, text, now_us()), True

        return self.db.write(work)

    # ---- rescoring

    def rescore(self, model: str | None = None, progress: Progress | None = None) -> int:
        """Score every lead afresh from the event log under `model` (default: all active
        models); return the number of leads. A lead that is now an MQL and was not before gets
        a handoff."""
        with self.db.read() as connection:
            names = set(model_store.active_versions(connection))
        if model is not None:
            if model not in names:
                raise NotFound(f"no model {model!r}")
            names = {model}
        return self._rescore(names, progress)

    def refresh(self, progress: Progress | None = None, *, older_than: float = 0.0,
                stop: Callable[[], bool] | None = None) -> int:
        """Save again, as of now, the scores that decay has moved since they were saved, so
        the listing's filters and sort see current values; return how many leads.

        Only leads with engagement (decay moves nothing else: fit, grade and the time-free
        parts stay) whose score was saved more than `older_than` seconds ago; from their saved
        engine state, a chunk of leads per transaction, until `stop()` or `close`."""
        with self.db.read() as connection:
            lead_ids = score_store.decaying(connection, now_us() - round(older_than * 1e6))

        def stopping() -> bool:
            return self._closing.is_set() or (stop is not None and stop())

        return self._each_lead(lambda session, lead_id: session.touch(lead_id), None,
                               progress, stopping, lead_ids=lead_ids)

    def _rescore(self, names: set[str], progress: Progress | None,
                 stop: Callable[[], bool] = lambda: False) -> int:
        """The leads, then their accounts (each scored once, from its rescored leads)."""
        done = self._each_lead(lambda session, lead_id: session.rebuild(lead_id), names,
                               progress, stop, preload=False, score_accounts=False)
        if not stop():
            self._score_accounts(names, stop)
        return done

    def _score_accounts(self, names: set[str], stop: Callable[[], bool] = lambda: False
                        ) -> int:
        """Score every account under `names`, a chunk of accounts per transaction."""
        with self.db.read() as connection:
            account_ids = account_store.known(connection)
        for start in range(0, len(account_ids), RESCORE_BATCH):
            if stop():
                return start
            chunk = account_ids[start:start + RESCORE_BATCH]

            def work(connection: Connection, chunk: list[str] = chunk) -> None:
                active = [m for m in self._active(connection) if m.name in names]
                Session(self.db, connection, active, now_us()).accounts.score(chunk)

            self.db.write(work)

        def forget(connection: Connection) -> None:   # models without `account:` now
            session = Session(self.db, connection, self._active(connection), now_us())
            account_store.drop_models(connection, session.accounts.models)

        self.db.write(forget)
        return len(account_ids)

    def _start_accounts(self, skip: set[str], background: bool) -> None:
        """Score the accounts under the models whose accounts are not all scored at their
        active version (a store just migrated, a model given an `account:` section)."""
        with self.db.read() as connection:
            session = Session(self.db, connection, self._active(connection), now_us(),
                              write=False)
            versions = {n: session.models[n].version for n in session.accounts.models
                        if n not in skip}
            names = account_store.stale(connection, versions) if versions else set()
        if not names:
            return
        if not background:
            self._score_accounts(names)
            return
        thread = threading.Thread(target=lambda: self._score_accounts(
            names, self._closing.is_set), name="score-accounts", daemon=True)
        self._threads["\x00accounts"] = thread
        thread.start()

    def _each_lead(self, action: Callable[[Session, str], object], names: set[str] | None,
                   progress: Progress | None, stop: Callable[[], bool] = lambda: False, *,
                   lead_ids: list[str] | None = None, preload: bool = True,
                   score_accounts: bool = True) -> int:
        """`action` on each live lead (default: all), a chunk per transaction; `preload`:
        the chunk's leads and states are read at once first (not when `action` replays)."""
        if lead_ids is None:
            with self.db.read() as connection:
                lead_ids = list(connection.execute(select(leads_table.c.id).where(
                    leads_table.c.merged_into.is_(None)).order_by(leads_table.c.id)).scalars())
        total, done = len(lead_ids), 0
        if progress is not None:
            progress(0, total)
        for start in range(0, total, RESCORE_BATCH):
            if stop():
                break
            chunk = lead_ids[start:start + RESCORE_BATCH]

            def work(connection: Connection, chunk: list[str] = chunk) -> None:
                active = [m for m in self._active(connection)
                          if names is None or m.name in names]
                session = Session(self.db, connection, active, now_us(),
                                  score_accounts=score_accounts)
                live = lead_store.live(connection, chunk)   # not merged away meanwhile
                if preload:
                    session.load(live)
                for lead_id in live:
                    action(session, lead_id)
                session.flush()

            self.db.write(work)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        return done

    def _start_rescore(self, name: str, version: int, background: bool) -> None:
        def run() -> None:
            def report(done: int, total: int) -> None:
                def work(connection: Connection) -> None:
                    if model_store.active_versions(connection).get(name) == version:
                        model_store.progress(connection, name, version, done, total,
                                             "rescoring")
                self.db.write(work)

            def stop() -> bool:
                if self._closing.is_set():
                    return True
                with self.db.read() as connection:
                    return model_store.active_versions(connection).get(name) != version

            done = self._rescore({name}, report, stop)
            if not stop():
                def finish(connection: Connection) -> None:
                    model_store.progress(connection, name, version, done, done, "ready")
                self.db.write(finish)

        if not background:
            run()
            return
        previous = self._threads.get(name)
        if previous is not None and previous.is_alive():
            previous.join()   # it stops at its next batch: its version is no longer active
        thread = threading.Thread(target=run, name=f"rescore-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()

    def _active(self, connection: Connection) -> list[ActiveModel]:
        """The active models (re-read when another process changed a version)."""
        versions = model_store.active_versions(connection)
        with self._lock:
            if {n: m.version for n, m in self._models.items()} != versions:
                texts = model_store.active(connection)
                loaded = {}
                for name, (version, text) in texts.items():
                    known = self._models.get(name)
                    loaded[name] = known if known is not None and known.version == version \
                        else ActiveModel(name, version,
                                         load_model(f"{name}@v{version}.yaml", text=text))
                self._models = loaded
            return [self._models[n] for n in sorted(self._models)]

    # ---- outbox

    def handoffs(self, status: str | None = None, limit: int = 50, offset: int = 0
                 ) -> tuple[list[OutboxItem], int]:
        """Outbox items, newest first, and how many there are."""
        with self.db.read() as connection:
            return outbox.listing(connection, status, limit, offset)

    def handoff(self, handoff_id: str) -> OutboxItem:
        with self.db.read() as connection:
            return outbox.get(connection, handoff_id)

    def claim_due(self, limit: int = 100, now: int | None = None) -> list[OutboxItem]:
        """Take due items for delivery (leased for a minute: safe with several dispatchers)."""
        when = now_us() if now is None else now
        return self.db.write(lambda connection: outbox.claim_due(connection, limit, when))

    def mark_delivered(self, handoff_id: str) -> None:
        self.db.write(lambda c: outbox.mark_delivered(c, handoff_id, now_us()))

    def mark_failed(self, handoff_id: str, error: str, next_attempt_at: int | None) -> None:
        """A failed attempt, retried at `next_attempt_at` (µs; None: only by `retry`)."""
        self.db.write(lambda c: outbox.mark_failed(c, handoff_id, error, next_attempt_at))

    def retry(self, handoff_id: str) -> None:
        """Deliver an item again as soon as possible."""
        self.db.write(lambda c: outbox.retry(c, handoff_id, now_us()))

    # ---- operations

    def healthy(self) -> bool:
        with self.db.read() as connection:
            connection.exec_driver_sql("SELECT 1")
        return True


def _no_score(model: str | None) -> dict[str, Any]:
    return {"model": model, "model_version": None, "score": None, "fit": None,
            "engagement": None, "grade": None, "temperature": None, "stage": None,
            "mql": None, "disqualified": None, "disqualify_reason": None, "purchases": None,
            "customer_since": None, "tenure_days": None, "recency_days": None,
            "frequency": None, "monetary": None, "as_of": None, "models": [], "reasons": [],
            "interests": []}


def _name_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("name:"):
            return number
    return None


def model_text(model: Model) -> str:
    """A model's YAML: its file's text where it came from one, else the model dumped."""
    if model.source and Path(model.source).is_file():
        text = Path(model.source).read_text(encoding="utf-8")
        if load_model(model.source, text=text) == model:
            return text
    return yaml.safe_dump(model.model_dump(mode="json", exclude_none=True), sort_keys=False,
                          allow_unicode=True)
