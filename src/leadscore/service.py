"""The scoring service's one API, for the HTTP layer, the CLI and Python users.

>>> service = Service.open("leadscore.db", models_dir="models")        # doctest: +SKIP
>>> service.ingest([{"type": "track", "userId": "ann", "event": "Demo Requested"}])  # +SKIP
>>> service.get_lead("ann")["score"]                                    # doctest: +SKIP

Every accepted message is stored and scored in one transaction; scores are read as of now
(decay applied at read time); model versions, rescoring and the handoff outbox live in the
store, so several processes can share it (PostgreSQL) or one can restart at any moment.

A facade: the work is done by `ingest.transaction` (messages in, through the store's group
commit), `model_versions` (models put, restored, loaded), `rescoring` (every lead or account
afresh, in the background) and the `store` modules (reads, the outbox).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection

from leadscore.errors import ModelError, Problem
from leadscore.filters import Filters
from leadscore.ingest.as_json import lead_json
from leadscore.ingest.decoded import DecodedStates
from leadscore.ingest.plan import Outlook
from leadscore.ingest.session import ActiveModel, Session
from leadscore.ingest.transaction import (
    IngestResult,
    Messages,
    apply_group,
    ingest_messages,
    prepare_call,
    replay_merged,
)
from leadscore.model.loader import load_models
from leadscore.model.schema import Model
from leadscore.model_versions import ModelVersions, model_text
from leadscore.rescoring import Progress, Rescoring
from leadscore.sales.desk import SalesDesk
from leadscore.store import accounts as account_store
from leadscore.store import leads as lead_store
from leadscore.store import models as model_store
from leadscore.store import outbox, privacy
from leadscore.store import scores as score_store
from leadscore.store.database import Database, NotFound, StoreError
from leadscore.store.group_commit import GroupCommit
from leadscore.store.migrate import migrate
from leadscore.store.outbox import OutboxItem
from leadscore.store.privacy import Erased
from leadscore.timeutil import US_PER_DAY, now_us, parse_timestamp

__all__ = ["IngestResult", "NotFound", "OutboxItem", "Service", "StoreError"]


class Service:
    """The store, the active models and the work on them. Thread-safe; open one per process."""

    def __init__(self, db: Database, filters: Filters | None = None):
        self.db = db
        # What keeps new events out of scoring (`leadscore.filters`; the `filters` setting).
        self.filters = Filters() if filters is None else filters
        self.versions = ModelVersions(db)
        self.rescoring = Rescoring(db, self.versions)
        self.decoded = DecodedStates()      # engine states kept decoded between writes
        # Whether scoring before the write lock pays (`ingest.optimistic`). SQLite only: its
        # one write lock is what a writer waits for; PostgreSQL's writers run side by side,
        # and planning there measured as extra work (benchmarks/RESULTS.md, #22).
        self.outlook = Outlook() if db.dialect == "sqlite" else None
        self.group_commit: Messages = GroupCommit(
            db, lambda connection, group: apply_group(
                db, connection, self.active_models(connection), group, self.filters,
                self.decoded),
            None if db.in_memory else    # its one connection: no read beside the writer
            lambda pending: prepare_call(db, self.active_models, self.decoded, self.filters,
                                         pending, self.outlook))
        self.sales = SalesDesk(db, self.ingest, self._half_lives, self.get_lead)

    # ---- opening and closing

    @classmethod
    def open(cls, db_url: str | Path | None = None, *, models: Sequence[Model] | None = None,
             models_dir: str | Path | None = None, background: bool = True,
             synchronous: str = "full", filters: Filters | None = None) -> Service:
        """Open (and migrate) the store; install the given models, each as a new active
        version where its text differs from the active one (then rescored: in a background
        thread, or before returning without `background`). `synchronous`: SQLite's durability
        of a commit, "full" or "normal" (see `leadscore.store.database`). `filters`: what
        keeps new events out of scoring (default: the maintained bot and scanner lists)."""
        db = Database(db_url, synchronous=synchronous)
        migrate(db)
        service = cls(db, filters)
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
            service.versions.install(model.name, text)
        routing = Path(models_dir).parent / "routing.yaml" if models_dir is not None else None
        if routing is not None and routing.is_file():     # routing.yaml beside models/
            service.sales.put_routing(routing.read_text(encoding="utf-8"), by="leadscore",
                                      file=str(routing))
        with db.read() as connection:
            pending = model_store.rescoring(connection)
        for name, version in pending:
            service.rescoring.start(name, version, background)
        service.rescoring.start_accounts({n for n, _ in pending}, background)
        return service

    def close(self) -> None:
        """Stop background rescoring (it resumes at the next open) and close the store."""
        self.rescoring.close()
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
        `leadscore.store.group_commit`): each returns once the transaction holding its
        messages is committed."""
        now = now_us() if received_at is None else received_at
        return ingest_messages(self.group_commit, messages, now, self._replay_merged)

    def _replay_merged(self, wanted: dict[str, set[str]], now: int) -> list[str]:
        return replay_merged(self.db, self.active_models, wanted, now)

    def import_events(self, source: Any, *, kind: Literal["auto", "events", "leads"] = "auto",
                      progress: Progress | None = None, batch_size: int | None = None,
                      history: bool = True, bulk: bool = True) -> Any:
        """Load Segment JSON lines, or events / leads tables (CSV, Parquet, Arrow, pandas),
        through the bulk import path (`bulk=False`: message by message through `ingest`); see
        `leadscore.ingest.files`. `history`: the messages score but enrol no one in a program
        (see `programs.entry`)."""
        from leadscore.ingest.files import import_source

        return import_source(self, source, kind=kind, progress=progress,
                             batch_size=batch_size, history=history, bulk=bulk)

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
            active = self.active_models(connection)
            if model is not None and model not in {m.name for m in active}:
                raise NotFound(f"no model {model!r}; active: "
                               f"{', '.join(sorted(m.name for m in active)) or '(none)'}")
            session = Session(self.db, connection, active, now_us(), write=False)
            return lead_json(session, found, model, as_of)

    def list_leads(self, *, model: str | None = None, grade: str | Sequence[str] | None = None,
                   temperature: str | Sequence[str] | None = None,
                   stage: str | Sequence[str] | None = None, min_score: float | None = None,
                   disqualified: bool | None = None, q: str | None = None,
                   sort: str = "score", descending: bool = True, limit: int = 50,
                   offset: int = 0, owner: str | Sequence[str] | None = None
                   ) -> tuple[list[dict[str, Any]], int]:
        """Saved scores (as of each lead's last change; `refresh` re-reads them as of now),
        filtered and sorted in SQL, one row per lead and model; and the total matching."""
        with self.db.read() as connection:
            return score_store.list_scores(
                connection, model=model, grade=grade, temperature=temperature, stage=stage,
                min_score=min_score, disqualified=disqualified, q=q, sort=sort,
                descending=descending, limit=limit, offset=offset, owner=owner)

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
            session = Session(self.db, connection, self.active_models(connection), now_us(),
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
            session = Session(self.db, connection, self.active_models(connection), now_us(),
                              write=False)
            return sorted(session.accounts.models)

    def rescore_accounts(self, model: str | None = None) -> int:
        """Score every account afresh from its leads' states (after its leads were rescored:
        `rescore` does both); an account that is now an MQA and was not gets a handoff."""
        with self.db.read() as connection:
            names = set(model_store.active_versions(connection))
        return self.rescoring.score_accounts(names if model is None else {model} & names)

    # ---- models

    def active_models(self, connection: Connection) -> list[ActiveModel]:
        """The active models by name (name, version, model) as of this transaction: what
        scores, segments and programs read."""
        return self.versions.active(connection)

    def _half_lives(self) -> dict[str, float | None]:
        """Each active model's engagement half-life in days (None: no decay)."""
        with self.db.read() as connection:
            return {m.name: (m.model.engagement.decay.half_life_days
                             if m.model.engagement.decay is not None else None)
                    for m in self.active_models(connection)}

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
        version, changed = self.versions.put(name, text)
        if changed:
            self.rescoring.start(name, version, background)
        return version

    def restore_model(self, name: str, version: int, *, background: bool = True) -> int:
        """Make an older version active again (and rescore)."""
        self.versions.restore(name, version)
        self.rescoring.start(name, version, background)
        return version

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background rescoring to finish."""
        self.rescoring.wait(timeout)

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
        return self.rescoring.rescore(names, progress)

    def refresh(self, progress: Progress | None = None, *, older_than: float = 0.0,
                stop: Callable[[], bool] | None = None) -> int:
        """Save again, as of now, the scores that time has moved since they were saved, so
        the listing's filters and sort see current values; return how many leads.

        Only leads with engagement (decay) and every lead of a model with `age_of` fit rules
        (a date's age moves fit and grade), whose score was saved more than `older_than`
        seconds ago; from their saved engine state, a chunk of leads per transaction, until
        `stop()` or `close`."""
        return self.rescoring.refresh(progress, older_than=older_than, stop=stop)

    # ---- filters

    def filtered_counts(self) -> dict[str, int]:
        """Events stored but never scored, per filter that caught them (`leadscore.filters`)."""
        from leadscore.store.dashboard import filtered_counts

        with self.db.read() as connection:
            return filtered_counts(connection)

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

    def mark_dead(self, handoff_id: str, error: str) -> None:
        """A dead letter: no automatic attempt again (`retry` revives it)."""
        self.db.write(lambda c: outbox.mark_dead(c, handoff_id, error))

    def retry(self, handoff_id: str) -> None:
        """Deliver an item again as soon as possible."""
        self.db.write(lambda c: outbox.retry(c, handoff_id, now_us()))

    # ---- operations

    def healthy(self) -> bool:
        with self.db.read() as connection:
            connection.exec_driver_sql("SELECT 1")
        return True

    # ---- privacy

    def forget(self, lead_id: str, by: str = "admin") -> Erased:
        """Erase a person (the lead, every lead merged into it, their events and every row
        about them) in one transaction, leaving a suppression record of their addresses and
        an audit entry (`by`: who asked) that does not name them."""
        return privacy.erase(self.db, str(lead_id), now_us(), by)

    def export_lead(self, lead_id: str) -> dict[str, Any]:
        """Everything stored of a person, as JSON values."""
        with self.db.read() as connection:
            return privacy.export(connection, str(lead_id))

    def delete_old_events(self, days: int, now: int | None = None) -> int:
        """Delete logged events older than `days` days (`event_retention_days`); the scores
        and states keep what those events earned. Returns how many were deleted."""
        if days <= 0:
            return 0
        return privacy.delete_events_before(self.db, (now or now_us()) - days * US_PER_DAY)
