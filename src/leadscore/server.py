"""Running the service: uvicorn with N worker processes, structured JSON logs, the handoff
dispatcher and the program scheduler in every worker, and a graceful shutdown on SIGTERM/SIGINT.

Shutdown order: stop accepting connections, answer every request in flight (each message is
committed before its 2xx, so an acknowledged event is never lost), then in each worker stop the
dispatcher (an item in flight is finished or stays due) and the scheduler (its round in flight
is finished: each batch of steps is one transaction), and close the worker's store.

Every worker process runs its own dispatcher and scheduler (`with_background`, from the app's
lifespan), as does every host on one database: outbox items, due enrolments and program
actions are claimed (`FOR UPDATE SKIP LOCKED` on PostgreSQL; one writer at a time on SQLite)
and leased, so none is delivered or run twice. A request that raised a handoff wakes its own
worker's dispatcher at once; the others poll every `delivery_poll_seconds`.

The retention sweep (`event_retention_days` > 0) runs once per server, in the main process,
at start and then hourly. The refresher runs once per server, in the main process: every
`refresh_seconds` it saves again, as of then, the scores decay has moved (`Service.refresh`),
so the listing's filters (temperature, grade, min score) and sort see a lead cooling down
without an event of its own.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from leadscore.alerts import Backoff, Dispatcher, targets_from
from leadscore.api.app import create_app, open_service
from leadscore.config import Settings
from leadscore.sales.worker import SalesWorker

SETTINGS_ENV = "LEADSCORE_SETTINGS_JSON"
GRACEFUL_SECONDS = 30
HEALTHCHECK_SECONDS = 120
RETENTION_SECONDS = 3600     # how often old events are looked for
log = logging.getLogger("leadscore.server")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(), "pid": record.process}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def log_config(level: str) -> dict[str, Any]:
    """A logging.config dict: every logger (uvicorn's too) as JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        "loggers": {
            "leadscore": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


def app_from_env() -> FastAPI:
    """The app of one worker process, from the settings `serve` put in the environment."""
    settings = Settings.from_json(json.loads(os.environ[SETTINGS_ENV]))
    return with_background(create_app(settings), settings)


def with_background(app: FastAPI, settings: Settings) -> FastAPI:
    """Run the handoff dispatcher and the program scheduler (with the segment keeper) beside
    the app, on its store, from its start-up until its shutdown, after the last request."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            from leadscore.programs.live import open_lifecycle

            service = app.state.service
            dispatcher = dispatcher_for(settings, service).start()
            app.state.wake_dispatcher = dispatcher.wake
            lifecycle = app.state.lifecycle = open_lifecycle(service, settings)
            lifecycle.scheduler.start(settings.delivery_poll_seconds * 5,
                                      keeper=lifecycle.keeper)
            # SLAs and adjustments' expiry (leadscore.sales)
            sales = SalesWorker(service, settings.sales_sweep_seconds,
                                wake=dispatcher.wake).start()
            try:
                yield state
            finally:
                sales.stop()
                lifecycle.scheduler.stop()
                dispatcher.stop()

    app.router.lifespan_context = lifespan
    return app


def dispatcher_for(settings: Settings, service: Any) -> Dispatcher:
    return Dispatcher(service, targets_from(settings),
                      poll_seconds=settings.delivery_poll_seconds,
                      backoff=Backoff(settings.retry_base_seconds, settings.retry_max_seconds),
                      max_attempts=settings.delivery_max_attempts)


class Refresher:
    """Refresh the saved scores every `seconds` in a thread (`Service.refresh`): only leads
    whose score was saved longer than `seconds` ago and whose engagement decays."""

    def __init__(self, service: Any, seconds: float):
        self.service, self.seconds = service, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def refresh(self) -> int:
        """One round; returns how many leads were refreshed."""
        count = int(self.service.refresh(older_than=self.seconds, stop=self._stop.is_set))
        self.runs += 1
        if count:
            log.info("scores refreshed", extra={"leads": count})
        return count

    def run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.refresh()
            except Exception:  # the store away for a moment: try again next round
                log.exception("refreshing the scores failed")

    def start(self) -> Refresher:
        if self.seconds > 0:
            self._thread = threading.Thread(target=self.run, name="refresher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the chunk in flight (each chunk is its own transaction)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class Retention:
    """Delete logged events older than `event_retention_days`, every `seconds`, in a thread
    (`Service.delete_old_events`: chunks, each its own transaction)."""

    def __init__(self, service: Any, days: int, seconds: float = RETENTION_SECONDS):
        self.service, self.days, self.seconds = service, days, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        deleted = int(self.service.delete_old_events(self.days))
        if deleted:
            log.info("old events deleted", extra={"events": deleted, "days": self.days})
        return deleted

    def run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # the store away for a moment: try again next round
                log.exception("deleting old events failed")
            if self._stop.wait(self.seconds):
                return

    def start(self) -> Retention:
        if self.days > 0:
            self._thread = threading.Thread(target=self.run, name="retention", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def serve(settings: Settings) -> None:
    """Run the service until SIGTERM or SIGINT (blocking)."""
    logging.config.dictConfig(log_config(settings.log_level))
    service = open_service(settings)
    refresher = Refresher(service, settings.refresh_seconds).start()
    retention = Retention(service, settings.event_retention_days).start()
    log.info("leadscore starting", extra={
        "host": settings.host, "port": settings.port, "workers": settings.workers,
        "db": _safe_url(settings.db), "models_dir": settings.models_dir,
        "webhooks": len(settings.webhooks), "smtp": bool(settings.smtp_url)})
    stopping: list[int] = []

    def note(sig: int, frame: FrameType | None) -> None:
        stopping.append(sig)

    # uvicorn restores the handlers it found and re-raises the signal after its graceful
    # shutdown: with this one in place, that lands here instead of killing the process
    # before the dispatcher and the store are closed.
    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    common: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_config": log_config(
            settings.log_level), "access_log": False, "timeout_graceful_shutdown":
            GRACEFUL_SECONDS, "server_header": False, "proxy_headers": False}
    try:
        if settings.workers <= 1:
            app = with_background(create_app(settings, service), settings)
            uvicorn.Server(uvicorn.Config(app, **common)).run()
        else:
            os.environ[SETTINGS_ENV] = json.dumps(settings.to_json())
            # A worker busy with a burst answers the supervisor's ping late; uvicorn's 5 s
            # default would kill it mid-request (its clients see a dropped connection).
            uvicorn.run("leadscore.server:app_from_env", factory=True,
                        workers=settings.workers, timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
                        **common)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        refresher.stop()
        retention.stop()
        service.close()
        log.info("leadscore stopped", extra={"signal": stopping[0] if stopping else None})


def _safe_url(url: str) -> str:
    """A database URL without its password, for logs."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{tail}"


if __name__ == "__main__":  # pragma: no cover - `leadscore serve` is the way in
    from leadscore.config import load_settings

    serve(load_settings(sys.argv[1] if len(sys.argv) > 1 else None))
