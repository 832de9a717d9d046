"""Several workers and several hosts on one PostgreSQL database, as real processes.

Many client threads send `/v1/batch` requests for 10 hot leads at once (bounded counts, 127.0.0.1
only); afterwards no update is lost: every acknowledged message is in the log (accepted exactly
once, whichever worker or host took it), each lead's saved score equals a full rescore of its
stored events and the points the acknowledged messages carry, each lead's crossing of the MQL
threshold is in the outbox exactly once, and every outbox item reached a real webhook receiver
exactly once under its id. A rolling restart (SIGTERM to one host while the other takes the
traffic, then the other way round) loses no acknowledged event, and each host's dispatcher
delivers the handoffs raised while it serves alone.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from leadscore.engine.incremental.rule_state import decayed
from leadscore.service import Service
from leadscore.store.database import Database
from leadscore.store.schema import events
from leadscore.timeutil import US_PER_SECOND, iso, now_us
from tests.alerts.receiver import Receiver
from tests.api.conftest import WRITE_KEY
from tests.api.live import Live, start

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

HOT = [f"hot-{i}" for i in range(10)]
SECRET = "hook-secret"
POINTS = {"Clicked": 1.0, "Demo Requested": 30.0}     # tests/api/models/web.yaml
HALF_LIFE_DAYS = 30.0
FIT = 10.0                                            # an e-mail


@dataclass
class Traffic:
    """What the clients sent and what the hosts acknowledged (200 to a whole batch)."""

    stamp: int                                         # every event's timestamp (µs)
    hosts: list[str]                                   # the load balancer's rotation
    acked: dict[str, tuple[str, str]] = field(default_factory=dict)   # id -> (lead, event)
    accepted: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)  # answers neither 200 nor a retry
    retries: int = 0
    pause: float = 0.0                                 # seconds between a thread's batches
    lock: threading.Lock = field(default_factory=threading.Lock)

    def up(self) -> list[str]:
        with self.lock:
            return list(self.hosts)

    def set_hosts(self, hosts: list[str]) -> None:
        with self.lock:
            self.hosts[:] = hosts


def batch_for(thread: int, number: int, stamp: int, rng: random.Random) -> list[dict[str, Any]]:
    """10 tracks over the hot leads: the first shared with the next thread's same batch (the
    same messageId sent twice, concurrently, to different workers), a demo request now and
    then, clicks otherwise."""
    shared = f"shared-{thread // 2}-{number}"
    messages = [{"type": "track", "userId": HOT[(thread // 2 + number) % len(HOT)],
                 "event": "Clicked", "messageId": shared, "timestamp": iso(stamp)}]
    for i in range(1, 10):
        event = "Demo Requested" if (number + i) % 17 == 0 else "Clicked"
        messages.append({"type": "track", "userId": rng.choice(HOT), "event": event,
                         "messageId": f"t{thread}-{number}-{i}", "timestamp": iso(stamp)})
    return messages


def post(traffic: Traffic, client: httpx.Client, batch: list[dict[str, Any]],
         first: int) -> None:
    """Send one batch as a client behind a load balancer would: to a host in rotation, again to
    another on a connection failure or a 5xx (the messageIds make a retry safe)."""
    deadline = time.monotonic() + 60
    attempt = first
    while time.monotonic() < deadline:
        hosts = traffic.up()
        url = hosts[attempt % len(hosts)]
        attempt += 1
        try:
            response = client.post(url + "/v1/batch", json={"batch": batch})
        except httpx.HTTPError:
            with traffic.lock:
                traffic.retries += 1
            time.sleep(0.05)
            continue
        if response.status_code >= 500:
            with traffic.lock:
                traffic.retries += 1
            time.sleep(0.05)
            continue
        with traffic.lock:
            if response.status_code != 200:
                traffic.failures.append(f"{response.status_code}: {response.text[:300]}")
                return
            answer = response.json()
            traffic.accepted += answer["accepted"]
            traffic.duplicates += answer["duplicates"]
            for message in batch:
                traffic.acked[message["messageId"]] = (message["userId"], message["event"])
        return
    with traffic.lock:
        traffic.failures.append("no host took a batch within 60 s")


def sender(traffic: Traffic, thread: int, batches: int | None,
           stop: threading.Event | None = None) -> None:
    rng = random.Random(thread)
    with httpx.Client(auth=(WRITE_KEY, ""), timeout=60) as client:
        number = 0
        while (batches is None or number < batches) and not (stop and stop.is_set()):
            post(traffic, client, batch_for(thread, number, traffic.stamp, rng), thread)
            number += 1
            if traffic.pause and stop is not None:
                stop.wait(traffic.pause)


def run_senders(traffic: Traffic, threads: int, batches: int | None = None,
                stop: threading.Event | None = None) -> list[threading.Thread]:
    started = [threading.Thread(target=sender, args=(traffic, t, batches, stop), daemon=True)
               for t in range(threads)]
    for thread in started:
        thread.start()
    return started


def identify(url: str, leads: list[str], stamp: int, *, demo: bool = False) -> None:
    """An e-mail (fit 10) for each lead; with `demo`, a demo request and a click too, which
    takes it over the MQL threshold (40)."""
    batch: list[dict[str, Any]] = []
    for lead in leads:
        batch.append({"type": "identify", "userId": lead, "messageId": f"id-{lead}",
                      "traits": {"email": f"{lead}@x.example"}, "timestamp": iso(stamp)})
        if demo:
            batch += [{"type": "track", "userId": lead, "event": event,
                       "messageId": f"{event}-{lead}", "timestamp": iso(stamp)}
                      for event in ("Demo Requested", "Clicked")]
    with httpx.Client(auth=(WRITE_KEY, ""), timeout=60) as client:
        response = client.post(url + "/v1/batch", json={"batch": batch})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(batch)


def delivered_by(live: Live) -> set[str]:
    """The delivery ids this server's dispatcher logged as delivered."""
    out = set()
    for line in live.log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "handoff delivered":
                out.add(record["delivery"])
    return out


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def check_store(db: str, traffic: Traffic, receiver: Receiver, crossing: set[str]) -> None:
    """No update lost, no handoff twice, every handoff delivered once."""
    assert not traffic.failures, traffic.failures[:5]
    # Every acknowledged message is in the log, and was accepted exactly once.
    database = Database(db)
    try:
        with database.read() as connection:
            stored = set(connection.execute(select(events.c.message_id)).scalars())
    finally:
        database.close()
    missing = set(traffic.acked) - stored
    assert not missing, f"{len(missing)} acknowledged messages are not in the log"
    assert traffic.accepted == len(traffic.acked), (traffic.accepted, len(traffic.acked))
    # Each lead's saved score is the points its acknowledged messages carry, and a full
    # rescore from the stored events gives the same.
    points: dict[str, float] = {}
    for lead, event in traffic.acked.values():
        points[lead] = points.get(lead, 0.0) + POINTS[event]
    as_of = now_us()
    with Service.open(db) as service:
        saved = {lead: service.get_lead(lead, "web", as_of=iso(as_of)) for lead in HOT}
        service.rescore()
        again = {lead: service.get_lead(lead, "web", as_of=iso(as_of)) for lead in HOT}
        items, total = service.handoffs(limit=1000)
    for lead in HOT:
        expected = decayed(points.get(lead, 0.0), as_of - traffic.stamp, HALF_LIFE_DAYS)
        assert saved[lead]["engagement"] == pytest.approx(expected, rel=1e-9), lead
        assert saved[lead]["fit"] == FIT and saved[lead]["mql"] is True, lead
        for key in ("score", "fit", "engagement"):
            assert saved[lead][key] == pytest.approx(again[lead][key], rel=1e-9), (lead, key)
        for key in ("stage", "mql"):     # a string and a boolean: equal, not approximately
            assert saved[lead][key] == again[lead][key], (lead, key)
    # One handoff per crossing: each hot lead crossed once (its score only grew meanwhile),
    # and so did each lead taken over the threshold during a restart.
    assert total == len(items)
    per_lead = Counter(item.lead_id for item in items)
    assert per_lead == Counter(set(HOT) | crossing), per_lead
    assert all(item.status == "delivered" for item in items), \
        [(i.lead_id, i.status, i.last_error) for i in items if i.status != "delivered"]
    # The receiver got each outbox item once, under its id, signed; nothing else.
    assert receiver.wait_for(len(items), timeout=20)
    assert set(receiver.counts) == {item.id for item in items}
    assert max(receiver.counts.values()) == 1, receiver.counts.most_common(3)
    assert receiver.bad_signatures == 0


def test_four_workers_lose_no_update_on_ten_hot_leads(tmp_path: Path, db_url: str) -> None:
    receiver = Receiver(SECRET).start()
    env = {"LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_WEBHOOK_SECRET": SECRET}
    stamp = now_us() - 10 * US_PER_SECOND
    live = start(db_url, tmp_path, workers=4, env=env)
    try:
        identify(live.url, HOT, stamp)
        traffic = Traffic(stamp, [live.url])
        for thread in run_senders(traffic, threads=8, batches=12):
            thread.join(120)
        assert traffic.duplicates >= 8 * 12 // 2    # the shared ids: one of each two
        assert receiver.wait_for(len(HOT), timeout=20)
        time.sleep(0.5)                             # a second delivery would show meanwhile
        assert live.stop(signal.SIGTERM) == 0, live.log.read_text()[-2000:]
        check_store(db_url, traffic, receiver, set())
    finally:
        if live.process.poll() is None:
            live.stop(signal.SIGKILL)
        receiver.stop()
    assert len(traffic.acked) == 8 * 12 * 10 - 8 * 12 // 2


def test_two_hosts_and_a_rolling_restart_lose_nothing(tmp_path: Path, db_url: str) -> None:
    """Hosts A and B (separate `serve` processes, each with its own dispatcher; one worker
    each to keep the restarts quick) behind a client-side load balancer; A is stopped with
    SIGTERM under load and started again, then B; the handoffs raised while one host serves
    alone are delivered by that host's dispatcher."""
    receiver = Receiver(SECRET).start()
    env = {"LEADSCORE_WEBHOOK_URLS": receiver.url, "LEADSCORE_WEBHOOK_SECRET": SECRET}
    stamp = now_us() - 10 * US_PER_SECOND
    with ThreadPoolExecutor(2) as pool:      # the two hosts start side by side
        both = [pool.submit(start, db_url, tmp_path, workers=1, env=env) for _ in "ab"]
    hosts = dict(zip("ab", (future.result() for future in both), strict=True))
    crossing: set[str] = set()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        identify(hosts["a"].url, HOT, stamp)
        # Throttled: the hosts restarting meanwhile need the machine too.
        traffic = Traffic(stamp, [hosts["a"].url, hosts["b"].url], pause=0.2)
        threads = run_senders(traffic, threads=6, stop=stop)
        time.sleep(2)
        for name, other in (("a", "b"), ("b", "a")):
            old = hosts[name]
            # SIGTERM while it still takes traffic: requests in flight are answered, the
            # clients' next ones fail over to the other host.
            assert old.stop(signal.SIGTERM) == 0, old.log.read_text()[-2000:]
            traffic.set_hosts([hosts[other].url])
            alone = [f"alone-{other}-{i}" for i in range(3)]
            identify(hosts[other].url, alone, stamp, demo=True)
            crossing |= set(alone)
            # Raised while `other` serves alone: its dispatcher delivers them.
            ids = {item.id for item in _handoffs(db_url) if item.lead_id in alone}
            assert len(ids) == len(alone)
            serving = hosts[other]
            assert wait_until(lambda: ids <= delivered_by(serving)), delivered_by(serving)  # noqa: B023
            port = int(old.url.rsplit(":", 1)[1])
            hosts[name] = start(db_url, tmp_path, workers=1, env=env, port=port)
            traffic.set_hosts([hosts["a"].url, hosts["b"].url])
            time.sleep(1.5)
            assert receiver.wait_for(len(HOT) + len(crossing), timeout=20)
        stop.set()
        for thread in threads:
            thread.join(120)
        assert traffic.retries > 0 or traffic.duplicates > 0
        time.sleep(0.5)
        for live in hosts.values():
            assert live.stop(signal.SIGTERM) == 0, live.log.read_text()[-2000:]
        check_store(db_url, traffic, receiver, crossing)
        assert len(traffic.acked) > 300
    finally:
        stop.set()
        for live in hosts.values():
            if live.process.poll() is None:
                live.stop(signal.SIGKILL)
        receiver.stop()


def _handoffs(db: str) -> list[Any]:
    with Service.open(db) as service:
        return service.handoffs(limit=1000)[0]
