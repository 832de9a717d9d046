"""An acknowledged batch survives SIGKILL: a writer process is killed mid-stream and every
batch it reported as committed is in the store after reopening — on SQLite with
synchronous=NORMAL too (it gives up durability across a power cut, not across a crash)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from leadscore.service import Service
from leadscore.store.schema import events

WRITER = """
import sys
from leadscore import load_model
from leadscore.service import Service
MODEL = "name: m\\nengagement:\\n  rules:\\n    - {name: any, event: E, points: 1}\\n"
service = Service.open(sys.argv[1], models=[load_model("m.yaml", text=MODEL)],
                       background=False, synchronous=sys.argv[2])
batch = 0
while True:
    result = service.ingest([{"type": "track", "userId": f"u{i % 7}", "event": "E",
                              "messageId": f"{batch}-{i}"} for i in range(20)])
    assert result.accepted == 20
    print(batch, flush=True)
    batch += 1
"""


@pytest.mark.slow
@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_acknowledged_batches_survive_sigkill(db_url: str, synchronous: str) -> None:
    if synchronous == "normal" and not db_url.startswith("sqlite"):
        pytest.skip("a SQLite setting")
    process = subprocess.Popen([sys.executable, "-c", WRITER, db_url, synchronous],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    acknowledged = -1
    deadline = time.monotonic() + 60
    while acknowledged < 30 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert acknowledged >= 30, "the writer did not get going"
    with Service.open(db_url) as service:
        with service.db.read() as connection:
            stored = connection.execute(select(func.count()).select_from(events)).scalar()
        assert stored is not None and stored >= (acknowledged + 1) * 20
        assert stored % 20 == 0                        # whole batches, never part of one
        total = sum(service.get_lead(f"u{i}")["score"] for i in range(7))
        assert total == stored                         # every stored event is scored
