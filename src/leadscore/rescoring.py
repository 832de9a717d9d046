"""Scoring leads and accounts afresh, a chunk per transaction: every lead from the event log
after a model version changed (in a background thread per model that stops when its version is
no longer active, its progress saved in the store so the next `Service.open` resumes it), its
accounts once its leads are done, and `refresh` of the scores decay has moved."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Connection, select

from leadscore.ingest.session import Session
from leadscore.model.compiled import compile_model
from leadscore.model_versions import ModelVersions
from leadscore.store import accounts as account_store
from leadscore.store import leads as lead_store
from leadscore.store import models as model_store
from leadscore.store import scores as score_store
from leadscore.store.database import Database
from leadscore.store.schema import leads as leads_table
from leadscore.timeutil import now_us

Progress = Callable[[int, int], None]
Stop = Callable[[], bool]
RESCORE_BATCH = 200
ACCOUNTS_THREAD = "\x00accounts"     # beside the threads named after their model


def never() -> bool:
    return False


class Rescoring:
    """The rescoring work of one service and its background threads."""

    def __init__(self, db: Database, versions: ModelVersions):
        self.db, self.versions = db, versions
        self.threads: dict[str, threading.Thread] = {}
        self.closing = threading.Event()

    def rescore(self, names: set[str], progress: Progress | None = None,
                stop: Stop = never) -> int:
        """Every live lead under the models `names`, then their accounts (each scored once,
        from its rescored leads); the number of leads."""
        done = self._each_lead(lambda session, lead_id: session.rebuild(lead_id), names,
                               progress, stop, preload=False, score_accounts=False)
        if not stop():
            self.score_accounts(names, stop)
        return done

    def refresh(self, progress: Progress | None = None, *, older_than: float = 0.0,
                stop: Stop | None = None) -> int:
        """Save again, as of now, the scores of the leads with engagement saved more than
        `older_than` seconds ago (see `Service.refresh`), until `stop()` or `close`."""
        with self.db.read() as connection:
            # A model with `age_of` fit rules: its fit moves with time, every lead it scores.
            moving = [m.name for m in self.versions.active(connection)
                      if compile_model(m.model).fit_moves]
            lead_ids = score_store.decaying(connection, now_us() - round(older_than * 1e6),
                                            moving)

        def stopping() -> bool:
            return self.closing.is_set() or (stop is not None and stop())

        return self._each_lead(lambda session, lead_id: session.touch(lead_id), None,
                               progress, stopping, lead_ids=lead_ids)

    def score_accounts(self, names: set[str], stop: Stop = never) -> int:
        """Score every account under `names`, a chunk of accounts per transaction."""
        with self.db.read() as connection:
            account_ids = account_store.known(connection)
        for start in range(0, len(account_ids), RESCORE_BATCH):
            if stop():
                return start
            chunk = account_ids[start:start + RESCORE_BATCH]

            def work(connection: Connection, chunk: list[str] = chunk) -> None:
                active = [m for m in self.versions.active(connection) if m.name in names]
                Session(self.db, connection, active, now_us()).accounts.score(chunk)

            self.db.write(work)

        def forget(connection: Connection) -> None:   # models without `account:` now
            session = Session(self.db, connection, self.versions.active(connection), now_us())
            account_store.drop_models(connection, session.accounts.models)

        self.db.write(forget)
        return len(account_ids)

    def start(self, name: str, version: int, background: bool) -> None:
        """Rescore every lead under version `version` of model `name`, recording progress in
        the store (`Service.model_status`): in a thread, or now without `background`."""
        def run() -> None:
            def report(done: int, total: int) -> None:
                def work(connection: Connection) -> None:
                    if model_store.active_versions(connection).get(name) == version:
                        model_store.progress(connection, name, version, done, total,
                                             "rescoring")
                self.db.write(work)

            def stop() -> bool:
                if self.closing.is_set():
                    return True
                with self.db.read() as connection:
                    return model_store.active_versions(connection).get(name) != version

            done = self.rescore({name}, report, stop)
            if not stop():
                def finish(connection: Connection) -> None:
                    model_store.progress(connection, name, version, done, done, "ready")
                self.db.write(finish)

        if not background:
            run()
            return
        previous = self.threads.get(name)
        if previous is not None and previous.is_alive():
            previous.join()   # it stops at its next batch: its version is no longer active
        thread = threading.Thread(target=run, name=f"rescore-{name}", daemon=True)
        self.threads[name] = thread
        thread.start()

    def start_accounts(self, skip: set[str], background: bool) -> None:
        """Score the accounts under the models (but `skip`) whose accounts are not all scored
        at their active version (a store just migrated, a model given an `account:`
        section)."""
        with self.db.read() as connection:
            session = Session(self.db, connection, self.versions.active(connection), now_us(),
                              write=False)
            versions = {n: session.models[n].version for n in session.accounts.models
                        if n not in skip}
            names = account_store.stale(connection, versions) if versions else set()
        if not names:
            return
        if not background:
            self.score_accounts(names)
            return
        thread = threading.Thread(target=lambda: self.score_accounts(
            names, self.closing.is_set), name="score-accounts", daemon=True)
        self.threads[ACCOUNTS_THREAD] = thread
        thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the background threads to finish."""
        for thread in list(self.threads.values()):
            thread.join(timeout)

    def close(self) -> None:
        """Stop the background threads (at their next chunk) and wait for them."""
        self.closing.set()
        for thread in list(self.threads.values()):
            thread.join()

    def _each_lead(self, action: Callable[[Session, str], object], names: set[str] | None,
                   progress: Progress | None, stop: Stop = never, *,
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
                active = [m for m in self.versions.active(connection)
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
