"""A real `leadscore serve` process on a free port of 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.alerts.receiver import free_port
from tests.api.conftest import ADMIN_TOKEN, MODELS, WRITE_KEY


@dataclass
class Live:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """SIGTERM goes to the server (which stops its workers); SIGKILL to its whole process
        group, workers included, as when a machine or container dies."""
        if self.process.poll() is None:
            if sig == signal.SIGKILL:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        code = self.process.wait(timeout)
        if sig == signal.SIGKILL:
            time.sleep(0.2)    # the orphaned workers are reaped by init
        return code


def start(db: str, tmp_path: Path, *, workers: int = 1, env: dict[str, str] | None = None,
          port: int | None = None, models: Path = MODELS) -> Live:
    port = port or free_port()
    log = tmp_path / f"server-{port}-{time.monotonic_ns()}.log"
    environment = {**os.environ, "LEADSCORE_WRITE_KEYS": WRITE_KEY,
                   "LEADSCORE_ADMIN_TOKEN": ADMIN_TOKEN, "LEADSCORE_LOG_REQUESTS": "false",
                   "LEADSCORE_DELIVERY_POLL_SECONDS": "0.05",
                   # load tests send thousands of messages a second from one address; the
                   # limits have their own tests (tests/security/test_http.py)
                   "LEADSCORE_RATE_LIMIT_PER_KEY": "0", "LEADSCORE_RATE_LIMIT_PER_IP": "0",
                   **(env or {})}
    environment.pop("LEADSCORE_CONFIG", None)
    command = [sys.executable, "-m", "leadscore.cli", "serve", "--db", db,
               "--models", str(models), "--port", str(port), "--workers", str(workers)]
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                               env=environment, cwd=tmp_path,
                               start_new_session=True)
    live = Live(f"http://127.0.0.1:{port}", process, log)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(live.url + "/healthz", timeout=1).status_code == 200:
                return live
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    live.stop(signal.SIGKILL)
    raise RuntimeError(f"the server did not start: {log.read_text()}")


@contextmanager
def serving(db: str, tmp_path: Path, **kwargs: Any) -> Iterator[Live]:
    live = start(db, tmp_path, **kwargs)
    try:
        yield live
    finally:
        if live.process.poll() is None:
            live.stop(signal.SIGTERM)
