"""The service façade on SQLite and PostgreSQL: ingestion, identity, scores, models, outbox."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from leadscore import load_model
from leadscore.errors import ModelError
from leadscore.events import Event, Lead
from leadscore.explain import explain
from leadscore.service import NotFound, Service
from leadscore.store.schema import events, outbox
from leadscore.timeutil import US_PER_DAY, iso, parse_timestamp

NOW = parse_timestamp("2026-05-20T12:00:00Z")
HOUR = US_PER_DAY // 24

MODEL = """\
name: web
fit:
  - {name: has email, when: {email: {exists: true}}, points: 10}
  - {name: big company, when: {account.employees: {gte: 100}}, points: 15}
  - {name: competitor, when: {email: {domain_in: [rival.example]}}, disqualify: competitor}
engagement:
  decay: {half_life_days: 10}
  rules:
    - {name: pricing, page: /pricing*, points: 10, limit: daily}
    - {name: demo, event: Demo Requested, points: 30, limit: once}
    - {name: opens, event: Email Opened, points: 2, distinct: properties.email_id}
    - {name: clicks, event: Email Link Clicked, points: 1, decay: false}
grades: {A: 20, B: 10, C: 0}
temperature: {hot: 30, warm: 10}
thresholds: {mql: 40}
lifecycle:
  - {stage: subscriber, on: {event: Newsletter Subscribed}}
  - {stage: lead, when: {email: {exists: true}}}
"""


def at(days_ago: float) -> str:
    return iso(NOW - round(days_ago * US_PER_DAY))


def track(user: str | None, name: str, days_ago: float, *, anonymous: str | None = None,
          message_id: str | None = None, **properties: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": name, "timestamp": at(days_ago),
                               "properties": properties}
    if user:
        message["userId"] = user
    if anonymous:
        message["anonymousId"] = anonymous
    if message_id:
        message["messageId"] = message_id
    return message


def page(user: str | None, path: str, days_ago: float, *, anonymous: str | None = None
         ) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "page", "timestamp": at(days_ago),
                               "properties": {"path": path}}
    if user:
        message["userId"] = user
    if anonymous:
        message["anonymousId"] = anonymous
    return message


def identify(user: str, anonymous: str | None = None, **traits: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "identify", "userId": user, "traits": traits,
                               "timestamp": at(0)}
    if anonymous:
        message["anonymousId"] = anonymous
    return message


@pytest.fixture
def service(db_url: str) -> Iterator[Service]:
    with Service.open(db_url, models=[load_model("web.yaml", text=MODEL)],
                      background=False) as opened:
        yield opened


def expected(events_of_lead: list[dict[str, Any]], lead_id: str, traits: dict[str, Any],
             account: dict[str, Any] | None = None) -> Any:
    """The score `explain` gives the lead's events scored together, as of NOW."""
    from leadscore.events import event_from_message

    parsed = [event_from_message({**m, "userId": lead_id}) for m in events_of_lead]
    return explain(load_model("web.yaml", text=MODEL), parsed,
                   Lead(lead_id, traits, account or {}), as_of=NOW)


def same(lead: dict[str, Any], score: Any) -> None:
    assert math.isclose(lead["score"], score.score, abs_tol=1e-9)
    assert math.isclose(lead["engagement"], score.engagement, abs_tol=1e-9)
    assert lead["fit"] == score.fit
    assert (lead["grade"], lead["temperature"], lead["stage"], lead["mql"]) == (
        score.grade, score.temperature, score.stage, score.mql)
    assert sorted(r["rule"] for r in lead["reasons"]) == sorted(r.rule for r in score.reasons)


# ---------------------------------------------------------------- ingestion


def test_a_message_sent_twice_is_counted_once(service: Service) -> None:
    batch = [track("ann", "Demo Requested", 1, message_id="m-1"),
             track("ann", "Email Opened", 1, message_id="m-2", email_id="e1")]
    first = service.ingest(batch, received_at=NOW)
    assert (first.accepted, first.duplicates) == (2, 0)
    again = service.ingest([*batch, batch[0]], received_at=NOW)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 3, [])
    with service.db.read() as connection:
        assert connection.execute(select(func.count()).select_from(events)).scalar() == 2
    same(service.get_lead("ann", as_of=NOW), expected(batch, "ann", {}))
    # A resent message whose lead is unknown here creates no lead.
    service.ingest([{**track("zed", "Demo Requested", 1), "messageId": "m-1"}],
                   received_at=NOW)
    with pytest.raises(NotFound):
        service.get_lead("zed")


def test_every_event_counts_once_new_lead_or_not(service: Service) -> None:
    clicks = [track("ann", "Email Link Clicked", 1), track("ann", "Email Link Clicked", 0.5)]
    service.ingest(clicks[:1], received_at=NOW)                  # a new lead's first event
    service.ingest(clicks[1:], received_at=NOW)
    service.ingest([track(None, "Email Link Clicked", 2, anonymous="a-1")], received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["engagement"] == 2
    service.ingest([identify("ann", "a-1"), track("ann", "Email Link Clicked", 0)],
                   received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["engagement"] == 4
    service.rescore()
    assert service.get_lead("ann", as_of=NOW)["engagement"] == 4


def _grouped(service: Service, calls: list[list[dict[str, Any]]],
             monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[int]]:
    """Run `calls` in threads while a first call holds its transaction open, so that they
    queue and share the next one; what each returned (or raised), and the number of calls
    in each transaction."""
    import threading
    import time

    from leadscore.ingest.session import Session

    inside, release = threading.Event(), threading.Event()
    flush = Session.flush

    def held(self: Session) -> None:
        inside.set()
        release.wait(10)
        flush(self)

    monkeypatch.setattr(Session, "flush", held)
    # PostgreSQL runs several groups at once
    monkeypatch.setattr(service.group_commit, "writers", 1)
    sizes: list[int] = []
    apply_group = service.group_commit.apply

    def counted(connection: Any, group: list[Any]) -> Any:
        sizes.append(len(group))
        return apply_group(connection, group)

    monkeypatch.setattr(service.group_commit, "apply", counted)
    outcomes: list[Any] = [None] * len(calls)

    def call(i: int, messages: list[dict[str, Any]]) -> None:
        try:
            outcomes[i] = service.ingest(messages, received_at=NOW)
        except BaseException as exc:
            outcomes[i] = exc

    first = threading.Thread(target=service.ingest, args=([track("first", "Demo Requested",
                                                                  1)],))
    first.start()
    assert inside.wait(10)
    # daemons: a call left waiting for ever (the bug a test looks for) must not hang pytest
    threads = [threading.Thread(target=call, args=(i, m), daemon=True)
               for i, m in enumerate(calls)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(service.group_commit.queue) < len(calls) and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    monkeypatch.undo()
    return outcomes, sizes


def test_concurrent_calls_share_a_transaction_each_with_its_own_outcome(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [[track("ann", "Demo Requested", 1, message_id="d-1"), page("ann", "/pricing", 0)],
             [track("bob", "Email Opened", 2, email_id="e1"), identify("bob", email="b@x.org")],
             [track("ann", "Demo Requested", 1, message_id="d-1"),     # ann's again: once
              track("ann", "Email Opened", 0.5, email_id="e2")],
             [{"type": "track", "userId": "cy"}, track("cy", "Clicked", 0)]]   # no event name
    outcomes, sizes = _grouped(service, calls, monkeypatch)
    assert sizes == [1, 4]                      # the first call, then the four together
    assert [(o.accepted, o.duplicates, len(o.rejected)) for o in outcomes] == [
        (2, 0, 0), (2, 0, 0), (1, 1, 0), (1, 0, 1)]
    ann = [calls[0][0], calls[0][1], calls[2][1]]
    same(service.get_lead("ann", as_of=NOW), expected(ann, "ann", {}))
    same(service.get_lead("bob", as_of=NOW), expected(calls[1][:1], "bob",
                                                      {"email": "b@x.org"}))
    with service.db.read() as connection:
        assert connection.execute(select(func.count()).select_from(events)).scalar() == 7


def test_a_call_that_fails_fails_alone_in_its_group(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    import leadscore.ingest.transaction

    apply_one = leadscore.ingest.transaction.apply

    def apply(session: Any, message: Any) -> Any:
        if message.message_id == "boom":
            raise RuntimeError("cannot store this one")
        return apply_one(session, message)

    monkeypatch.setattr(leadscore.ingest.transaction, "apply", apply)
    calls = [[track("ann", "Demo Requested", 1)],
             [track("bob", "Demo Requested", 1), track("bob", "Clicked", 1, message_id="boom")],
             [track("cy", "Demo Requested", 1)]]
    outcomes, sizes = _grouped(service, calls, monkeypatch)
    assert sizes == [1, 3, 1, 1, 1]             # the group failed: each call again alone
    assert outcomes[0].accepted == outcomes[2].accepted == 1
    assert isinstance(outcomes[1], RuntimeError)
    with service.db.read() as connection:
        stored = set(connection.execute(select(events.c.user_id)).scalars())
    assert stored == {"first", "ann", "cy"}
    with pytest.raises(NotFound):
        service.get_lead("bob")


def test_an_interrupt_while_a_group_is_retried_leaves_no_call_waiting(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """The group fails; retried alone, the culprit's call is interrupted (a BaseException,
    as KeyboardInterrupt): the calls after it in the group get that error, not a wait for
    ever."""
    import leadscore.ingest.transaction

    class Interrupted(BaseException):
        pass

    apply_one = leadscore.ingest.transaction.apply
    tries: list[str] = []

    def apply(session: Any, message: Any) -> Any:
        if message.message_id == "boom":
            tries.append("boom")
            if len(tries) == 1:
                raise RuntimeError("cannot store this one")
            raise Interrupted
        return apply_one(session, message)

    monkeypatch.setattr(leadscore.ingest.transaction, "apply", apply)
    calls = [[track("ann", "Demo Requested", 1)],
             [track("bob", "Clicked", 1, message_id="boom")],
             [track("cy", "Demo Requested", 1)]]
    outcomes, sizes = _grouped(service, calls, monkeypatch)
    assert sizes == [1, 3, 1, 1]              # the group, ann alone, then bob interrupted
    assert isinstance(outcomes[1], Interrupted) and isinstance(outcomes[2], Interrupted)
    # ann's call is written; it returns its result, or the interrupt where its thread was
    # the one writing the group
    assert isinstance(outcomes[0], Interrupted) or outcomes[0].accepted == 1
    with service.db.read() as connection:
        stored = set(connection.execute(select(events.c.user_id)).scalars())
    assert stored == {"first", "ann"}


def test_a_message_without_message_id_is_deduplicated_by_content(service: Service) -> None:
    message = track("ann", "Demo Requested", 1)
    assert service.ingest([message], received_at=NOW).accepted == 1
    assert service.ingest([dict(message)], received_at=NOW).duplicates == 1


BAD = [
    ({"type": "track", "event": "Demo Requested"}, "userId", "neither userId nor anonymousId"),
    ({"type": "track", "userId": ["x"], "event": "E"}, "userId", "must be a string"),
    ({"type": "track", "userId": "x", "event": "E", "timestamp": "yesterday"}, "timestamp",
     "not an ISO-8601 timestamp"),
    ({"type": "track", "userId": "x", "event": "E", "timestamp": "1999-12-31T00:00:00Z"},
     "timestamp", "before 2000"),
    ({"type": "track", "userId": "x", "event": "E", "timestamp": at(-2)}, "timestamp",
     "more than a day in the future"),
    ({"type": "shout", "userId": "x"}, "type", "unknown message type"),
    ({"type": "track", "userId": "x"}, "event", "needs an event name"),
    ({"type": "track", "userId": "x", "event": "E", "properties": [1]}, "properties",
     "must be an object"),
    ({"type": "group", "userId": "x"}, "groupId", "needs groupId"),
    ({"type": "alias", "userId": "x"}, "previousId", "needs previousId"),
    ("not a message", None, "must be an object"),
]


def test_bad_messages_are_rejected_naming_the_field_and_the_rest_is_stored(
        service: Service) -> None:
    good = [track("ann", "Demo Requested", 1), page("bob", "/pricing", 0.5)]
    result = service.ingest([good[0], *(m for m, _, _ in BAD), good[1]], received_at=NOW)
    assert result.accepted == 2
    assert [r.index for r in result.rejected] == list(range(1, len(BAD) + 1))
    for rejected, (_, field, text) in zip(result.rejected, BAD, strict=True):
        assert rejected.field == field
        assert text in (rejected.message or "")
        assert f"message {rejected.index}" in (rejected.message or "")
    assert service.get_lead("ann", as_of=NOW)["engagement"] > 0
    assert service.get_lead("bob", as_of=NOW)["engagement"] > 0


def test_a_timestamp_slightly_in_the_future_is_clamped(service: Service) -> None:
    service.ingest([{"type": "track", "userId": "ann", "event": "Demo Requested",
                     "timestamp": iso(NOW + 2 * HOUR)}], received_at=NOW)
    with service.db.read() as connection:
        assert connection.execute(select(events.c.timestamp)).scalar() == NOW
    lead = service.get_lead("ann", as_of=NOW)
    assert lead["engagement"] == 30.0
    assert lead["reasons"][0]["last_at"] == iso(NOW)


# ---------------------------------------------------------------- identity


def test_anonymous_history_counts_once_identified(service: Service) -> None:
    anonymous = [page(None, "/pricing", 3, anonymous="a-1"),
                 page(None, "/pricing/team", 2, anonymous="a-1"),
                 track(None, "Email Opened", 2, anonymous="a-1", email_id="e1")]
    service.ingest(anonymous, received_at=NOW)
    assert service.get_lead("a-1", as_of=NOW)["lead_id"] == "a-1"
    service.ingest([track("ann", "Demo Requested", 1)], received_at=NOW)
    service.ingest([identify("ann", "a-1", email="ann@example.org")], received_at=NOW)
    lead = service.get_lead("ann", as_of=NOW)
    want = expected([*anonymous, track("ann", "Demo Requested", 1)], "ann",
                    {"email": "ann@example.org"})
    same(lead, want)
    assert service.get_lead("a-1", as_of=NOW)["lead_id"] == "ann"
    # Later anonymous activity goes to the lead too.
    service.ingest([page(None, "/pricing", 0, anonymous="a-1")], received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["score"] > lead["score"]
    rows, total = service.list_leads()
    assert total == 1 and rows[0]["lead_id"] == "ann"


def test_alias_merges_two_known_leads_into_one_score(service: Service) -> None:
    ann = [track("ann", "Demo Requested", 4), page("ann", "/pricing", 3)]
    old = [page("ann-old", "/pricing", 2), track("ann-old", "Email Opened", 1, email_id="x")]
    service.ingest([identify("ann", email="ann@example.org"), *ann,
                    identify("ann-old", company="Old Co"), *old], received_at=NOW)
    result = service.ingest([{"type": "alias", "previousId": "ann-old", "userId": "ann"}],
                            received_at=NOW)
    assert result.accepted == 1
    lead = service.get_lead("ann", as_of=NOW)
    same(lead, expected([*ann, *old], "ann", {"email": "ann@example.org",
                                             "company": "Old Co"}))
    assert lead["traits"] == {"email": "ann@example.org", "company": "Old Co"}
    assert service.get_lead("ann-old", as_of=NOW)["lead_id"] == "ann"
    assert service.list_leads()[1] == 1
    # Later events under the old id count for the surviving lead.
    service.ingest([track("ann-old", "Email Opened", 0, email_id="y")], received_at=NOW)
    assert math.isclose(service.get_lead("ann", as_of=NOW)["score"], lead["score"] + 2)


def test_group_links_an_account_whose_traits_fit_rules_read(service: Service) -> None:
    service.ingest([identify("ann", email="ann@acme.example"),
                    identify("bob", email="bob@acme.example"),
                    {"type": "group", "userId": "ann", "groupId": "acme",
                     "traits": {"name": "Acme", "employees": 50}}], received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["fit"] == 10
    service.ingest([{"type": "group", "userId": "bob", "groupId": "acme",
                     "traits": {"employees": 500}}], received_at=NOW)
    for lead_id in ("ann", "bob"):   # both leads of the account are re-scored
        lead = service.get_lead(lead_id, as_of=NOW)
        assert lead["account_id"] == "acme"
        assert lead["account"] == {"name": "Acme", "employees": 500}
        assert lead["fit"] == 25
        assert "big company" in [r["rule"] for r in lead["reasons"]]
    assert {r["lead_id"]: r["fit"] for r in service.list_leads()[0]} == {"ann": 25, "bob": 25}


def test_identify_traits_company_is_the_leads_account(service: Service) -> None:
    acme = {"id": "acme", "name": "Acme", "employees": 50, "plan": "pro"}
    service.ingest([identify("ann", email="ann@acme.example", company=acme)], received_at=NOW)
    ann = service.get_lead("ann", as_of=NOW)
    assert (ann["account_id"], ann["account"], ann["fit"]) == (
        "acme", {"name": "Acme", "employees": 50, "plan": "pro"}, 10)
    assert ann["traits"]["company"] == acme                   # still a trait, as sent
    # Another lead's identify updates the account, as a group call would: both re-scored.
    service.ingest([identify("bob", company={"id": "acme", "employees": 500})],
                   received_at=NOW)
    for lead_id in ("ann", "bob"):
        lead = service.get_lead(lead_id, as_of=NOW)
        assert lead["account_id"] == "acme" and lead["account"]["employees"] == 500
        assert "big company" in [r["rule"] for r in lead["reasons"]]
    assert {r["lead_id"]: r["fit"] for r in service.list_leads()[0]} == {"ann": 25, "bob": 15}
    # No id: the company's name names the account; not an object: a trait only.
    service.ingest([identify("cy", company={"name": "Cy Inc", "employees": 120}),
                    identify("dee", company="Dee Ltd")], received_at=NOW)
    assert service.get_lead("cy", as_of=NOW)["account_id"] == "Cy Inc"
    dee = service.get_lead("dee", as_of=NOW)
    assert (dee["account_id"], dee["traits"]) == (None, {"company": "Dee Ltd"})


def test_unknown_leads_and_models_are_not_found(service: Service) -> None:
    with pytest.raises(NotFound, match="no lead 'nobody'"):
        service.get_lead("nobody")
    with pytest.raises(KeyError):
        service.get_lead("nobody")
    service.ingest([track("ann", "Demo Requested", 1)], received_at=NOW)
    with pytest.raises(NotFound, match="no model 'other'"):
        service.get_lead("ann", model="other")


# ---------------------------------------------------------------- handoffs


def test_a_handoff_is_written_once_per_crossing(service: Service) -> None:
    first = service.ingest([identify("ann", email="ann@example.org"),
                            track("ann", "Demo Requested", 1)], received_at=NOW)
    assert first.handoffs == []                     # 10 + 30·2^(-0.1) < 40
    crossing = service.ingest([page("ann", "/pricing", 0)], received_at=NOW)
    assert len(crossing.handoffs) == 1
    more = service.ingest([page("ann", "/pricing/x", 0), track("ann", "Email Opened", 0,
                                                               email_id="e")],
                          received_at=NOW)
    assert more.handoffs == []
    items, total = service.handoffs()
    assert total == 1
    [item] = items
    assert item.id == crossing.handoffs[0] and item.status == "pending"
    payload = item.payload
    assert payload["lead_id"] == "ann" and payload["model"] == "web"
    assert payload["traits"] == {"email": "ann@example.org"}
    assert payload["event"]["path"] == "/pricing"
    assert payload["interests"] == []
    assert payload["score"] >= 40 and payload["grade"] == "B"
    assert {r["rule"] for r in payload["reasons"]} == {"has email", "demo", "pricing"}
    assert math.isclose(sum(r["points"] for r in payload["reasons"]), payload["score"])
    # Rescoring from the log raises no second handoff for the same crossing.
    service.rescore()
    assert service.handoffs()[1] == 1


def test_a_handoff_is_written_in_the_transaction_of_its_event(
        service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    from leadscore.ingest.session import Session

    def fail(self: Session) -> None:
        raise RuntimeError("the disk is gone")

    monkeypatch.setattr(Session, "flush", fail)
    with pytest.raises(RuntimeError):
        service.ingest([identify("ann", email="ann@example.org"),
                        track("ann", "Demo Requested", 0), page("ann", "/pricing", 0)],
                       received_at=NOW)
    with service.db.read() as connection:
        assert connection.execute(select(func.count()).select_from(events)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(outbox)).scalar() == 0
    monkeypatch.undo()
    result = service.ingest([identify("ann", email="ann@example.org"),
                             track("ann", "Demo Requested", 0), page("ann", "/pricing", 0)],
                            received_at=NOW)
    assert len(result.handoffs) == 1


def test_outbox_claim_deliver_fail_retry(service: Service) -> None:
    for name in ("ann", "bob", "cy"):
        service.ingest([identify(name, email=f"{name}@example.org"),
                        track(name, "Demo Requested", 0), page(name, "/pricing", 0)],
                       received_at=NOW)
    assert service.handoffs(status="pending")[1] == 3
    claimed = service.claim_due(limit=2, now=NOW)
    assert len(claimed) == 2 and all(c.attempts == 1 for c in claimed)
    rest = service.claim_due(limit=10, now=NOW)   # the first two are leased
    assert len(rest) == 1 and rest[0].id not in {c.id for c in claimed}
    assert service.claim_due(limit=10, now=NOW) == []
    delivered, failed, given_up = claimed[0], claimed[1], rest[0]
    service.mark_delivered(delivered.id)
    service.mark_failed(failed.id, "HTTP 503", NOW + 10 * 1_000_000)
    service.mark_failed(given_up.id, "HTTP 410", None)
    assert service.claim_due(limit=10, now=NOW + 5 * 1_000_000) == []
    [again] = service.claim_due(limit=10, now=NOW + 10 * 1_000_000)
    assert again.id == failed.id and again.attempts == 2 and again.last_error == "HTTP 503"
    # A dispatcher that died: its lease runs out and the item is due again.
    [after_lease] = service.claim_due(limit=10, now=NOW + 200 * 1_000_000)
    assert after_lease.id == failed.id and after_lease.attempts == 3
    assert service.handoff(delivered.id).status == "delivered"
    assert [i.id for i in service.handoffs(status="failed")[0]] == sorted(
        [failed.id, given_up.id], key=[i.id for i in service.handoffs()[0]].index)
    service.retry(given_up.id)
    due = service.claim_due(limit=10)                    # retry: due now (wall clock)
    assert given_up.id in {d.id for d in due}
    with pytest.raises(NotFound):
        service.retry("no-such-id")


# ---------------------------------------------------------------- reading


def test_list_leads_filters_sorts_and_pages_in_sql(service: Service) -> None:
    service.ingest([
        identify("ann", email="ann@example.org", name="Ann Lee"),
        track("ann", "Demo Requested", 0), page("ann", "/pricing", 0),
        identify("bob", email="bob@rival.example"), track("bob", "Demo Requested", 0),
        identify("cy", email="cy@example.org"),
        page(None, "/pricing", 1, anonymous="anon-1"),
    ], received_at=NOW)
    rows, total = service.list_leads()
    assert total == 4
    assert rows[0]["lead_id"] == "ann"
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert {r["lead_id"] for r in service.list_leads(disqualified=True)[0]} == {"bob"}
    assert {r["lead_id"] for r in service.list_leads(temperature="dead")[0]} == {"bob"}
    assert {r["lead_id"] for r in service.list_leads(grade=["A", "B"])[0]} == {"ann", "bob",
                                                                             "cy"}
    assert {r["lead_id"] for r in service.list_leads(min_score=40)[0]} == {"ann", "bob"}
    assert {r["lead_id"] for r in service.list_leads(q="ann lee")[0]} == {"ann"}
    assert {r["lead_id"] for r in service.list_leads(q="RIVAL")[0]} == {"bob"}
    assert {r["lead_id"] for r in service.list_leads(q="anon")[0]} == {"anon-1"}
    assert {r["lead_id"] for r in service.list_leads(stage="lead")[0]} == {"bob", "cy"}
    page_two, total = service.list_leads(sort="lead_id", descending=False, limit=2, offset=2)
    assert total == 4 and [r["lead_id"] for r in page_two] == ["bob", "cy"]
    with pytest.raises(ValueError, match="unknown sort"):
        service.list_leads(sort="nonsense")


def test_scores_decay_at_read_time(service: Service) -> None:
    service.ingest([track("ann", "Demo Requested", 0)], received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["engagement"] == 30
    later = service.get_lead("ann", as_of=NOW + 10 * US_PER_DAY)
    assert math.isclose(later["engagement"], 15)
    assert service.get_lead("ann")["engagement"] < 30     # now: months after NOW


def test_refresh_lets_the_listing_see_a_lead_cool_down(service: Service) -> None:
    from leadscore.timeutil import now_us

    then = now_us() - 40 * US_PER_DAY               # 4 half-lives ago
    service.ingest([{"type": "track", "userId": "ann", "event": "Demo Requested",
                     "timestamp": iso(then)},
                    identify("bob", email="bob@example.org")], received_at=then)
    assert [r["lead_id"] for r in service.list_leads(temperature="hot")[0]] == ["ann"]
    assert service.refresh(older_than=3600) == 1    # bob has no engagement to decay
    assert service.list_leads(temperature="hot")[1] == 0
    cold = {r["lead_id"]: r for r in service.list_leads(temperature="cold")[0]}
    assert set(cold) == {"ann", "bob"}
    assert math.isclose(cold["ann"]["engagement"], 30 / 16, rel_tol=1e-3)
    assert service.refresh(older_than=3600) == 0    # saved just now: nothing to do


FADING = """\
name: fading
engagement:
  rules:
    - {name: demo, event: Demo Requested, points: 50, limit: once}
    - {name: careers, event: Careers Viewed, points: -30, limit: once,
       decay: {half_life_days: 10}}
thresholds: {mql: 40}
"""


def test_refresh_hands_off_a_lead_that_fading_negative_points_lift_over_mql(
        db_url: str) -> None:
    from leadscore.timeutil import now_us

    then = now_us() - 20 * US_PER_DAY                # −30 has faded to −7.5 by now
    with Service.open(db_url, models=[load_model("fading.yaml", text=FADING)],
                      background=False) as service:
        service.ingest([{"type": "track", "userId": "ann", "event": name,
                         "timestamp": iso(then)} for name in ("Careers Viewed",
                                                              "Demo Requested")],
                       received_at=then)
        assert service.handoffs()[1] == 0            # 20 points when the events came
        assert service.refresh(older_than=3600) == 1
        items, count = service.handoffs()
        assert count == 1
        payload = items[0].payload
        assert payload["lead_id"] == "ann" and payload["event"] is None
        assert payload["score"] == pytest.approx(42.5, abs=0.01)
        assert service.get_lead("ann")["mql"]
        service.rescore()                            # nor a rescore from the log
        assert service.refresh(older_than=0) == 1    # nor a second refresh
        assert service.handoffs()[1] == 1


AGING = """\
name: aging
fit:
  - name: signed up lately
    age_of: signed_up
    bands:
      - {lt: 30, points: 20}
      - {gte: 30, points: 5}
grades: {A: 20, B: 5}
thresholds: {mql: 15}
"""


def test_refresh_moves_a_fit_that_reads_a_dates_age_as_batch_does(
        db_url: str, tmp_path: Any) -> None:
    """An `age_of` rule's points change with time alone: the refresh saves them again (no
    engagement to decay here), and the service's score as of T is the batch plan's on the
    same messages as of T."""
    import json

    from leadscore.engine.batch import score_many
    from leadscore.timeutil import now_us

    then = now_us() - 20 * US_PER_DAY                # signed up 15 days before then: 35 now
    model = load_model("aging.yaml", text=AGING)
    messages = [{"type": "identify", "userId": "ann", "messageId": "m1",
                 "traits": {"signed_up": iso(then - 15 * US_PER_DAY)}, "timestamp": iso(then)},
                {"type": "identify", "userId": "bob", "messageId": "m2",
                 "traits": {"signed_up": "not a date"}, "timestamp": iso(then)}]
    with Service.open(db_url, models=[model], background=False) as service:
        service.ingest(messages, received_at=then)
        saved = {r["lead_id"]: r for r in service.list_leads()[0]}
        assert (saved["ann"]["fit"], saved["ann"]["grade"], saved["ann"]["mql"]) == (
            20, "A", True)
        assert service.handoffs()[1] == 1
        assert service.refresh(older_than=3600) == 2    # both: their model's fit moves
        saved = {r["lead_id"]: r for r in service.list_leads()[0]}
        assert (saved["ann"]["fit"], saved["ann"]["grade"], saved["ann"]["mql"]) == (
            5, "B", False)
        assert saved["bob"]["fit"] == 0
        assert service.refresh(older_than=3600) == 0    # saved just now
        as_of = saved["ann"]["as_of"]
        read = service.get_lead("ann", as_of=then + 14 * US_PER_DAY)
        assert read["fit"] == 20                          # 29 days old then
    path = tmp_path / "messages.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    for when, lead in ((as_of, saved["ann"]), (then + 14 * US_PER_DAY, read)):
        batch = {r["lead_id"]: r for r in score_many(model, str(path), as_of=when).to_pylist()}
        assert (batch["ann"]["fit"], batch["ann"]["grade"], batch["ann"]["mql"]) == (
            lead["fit"], lead["grade"], lead["mql"])
    assert batch["bob"]["fit"] == 0


# ---------------------------------------------------------------- models


BETTER = MODEL.replace("points: 30, limit: once", "points: 50, limit: once")


def test_a_bad_model_is_refused_and_the_running_one_stays(service: Service) -> None:
    service.ingest([track("ann", "Demo Requested", 0)], received_at=NOW)
    with pytest.raises(ModelError) as caught:
        service.put_model("web", MODEL.replace("points: 30", "points: lots"))
    assert any("points" in p.key for p in caught.value.problems)
    with pytest.raises(ModelError, match="name"):
        service.put_model("other", MODEL)
    assert [m["version"] for m in service.models()] == [1]
    assert service.get_lead("ann", as_of=NOW)["engagement"] == 30


def test_a_new_model_version_rescores_every_lead(service: Service) -> None:
    service.ingest([track("ann", "Demo Requested", 0), track("bob", "Demo Requested", 0),
                    page("bob", "/pricing", 0)], received_at=NOW)
    assert service.put_model("web", MODEL) == 1          # the same text: nothing changes
    version = service.put_model("web", BETTER)
    assert version == 2
    service.wait()
    status = service.model_status("web")
    assert (status["version"], status["state"], status["done"], status["total"]) == (
        2, "ready", 2, 2)
    assert service.get_lead("ann", as_of=NOW)["engagement"] == 50
    assert [m["version"] for m in service.model_versions("web")] == [1, 2]
    # bob crosses 40 under version 2 (50 + 10), not before (30 + 10): one handoff.
    assert {i.lead_id for i in service.handoffs()[0]} == {"bob"}
    service.restore_model("web", 1, background=False)
    assert service.get_lead("ann", as_of=NOW)["engagement"] == 30
    assert service.model_status("web")["version"] == 1
    assert load_model("v1.yaml", text=service.model("web")).model_dump() == load_model(
        "web.yaml", text=MODEL).model_dump()
    assert service.model("web", version=2) == BETTER


def test_rescore_equals_a_batch_score_of_the_stored_events(service: Service) -> None:
    import random

    import pyarrow as pa

    from leadscore.engine.batch import score_many
    from leadscore.events import event_to_row
    from leadscore.store.leads import events_of

    rng = random.Random(7)
    messages: list[dict[str, Any]] = []
    for n in range(12):
        lead = f"lead-{n}"
        if n % 3:
            messages.append(identify(lead, email=f"{lead}@example.org"))
        for _ in range(rng.randint(0, 8)):
            days = rng.uniform(0, 40)
            kind = rng.choice(["pricing", "demo", "open"])
            messages.append(page(lead, "/pricing", days) if kind == "pricing" else
                            track(lead, "Demo Requested", days) if kind == "demo" else
                            track(lead, "Email Opened", days, email_id=rng.choice("abc")))
    rng.shuffle(messages)
    service.ingest(messages, received_at=NOW)
    incremental = {r["lead_id"]: service.get_lead(r["lead_id"], as_of=NOW)
                   for r in service.list_leads(limit=100)[0]}
    assert service.rescore() == 12
    for lead_id, lead in incremental.items():
        assert service.get_lead(lead_id, as_of=NOW)["score"] == pytest.approx(lead["score"])
    with service.db.read() as connection:
        stored: list[Event] = [e for lead_id in incremental
                               for e in events_of(connection, lead_id)]
    event_rows = [event_to_row(e) for e in stored]
    columns = list(dict.fromkeys(key for row in event_rows for key in row))
    event_rows = [{key: row.get(key) for key in columns} for row in event_rows]
    lead_rows = [{"lead_id": i, "email": lead["traits"].get("email")}
                 for i, lead in incremental.items()]
    batch = score_many(load_model("web.yaml", text=MODEL), pa.Table.from_pylist(event_rows),
                       pa.Table.from_pylist(lead_rows), as_of=NOW).to_pylist()
    assert {r["lead_id"] for r in batch} == set(incremental)
    for row in batch:
        lead = incremental[row["lead_id"]]
        assert lead["score"] == pytest.approx(row["score"], abs=1e-9)
        assert (lead["grade"], lead["temperature"], lead["stage"], lead["mql"]) == (
            row["grade"], row["temperature"], row["stage"], row["mql"])


# ---------------------------------------------------------------- durability


def test_everything_is_there_after_reopening(db_url: str) -> None:
    model = load_model("web.yaml", text=MODEL)
    with Service.open(db_url, models=[model], background=False) as service:
        service.ingest([identify("ann", "a-1", email="ann@example.org"),
                        track("ann", "Demo Requested", 0), page("ann", "/pricing", 0),
                        {"type": "group", "userId": "ann", "groupId": "acme",
                         "traits": {"employees": 500}}], received_at=NOW)
        service.put_model("web", BETTER, background=False)
        before = service.get_lead("a-1", as_of=NOW)
        handoffs = service.handoffs()
    with Service.open(db_url) as service:
        assert service.get_lead("a-1", as_of=NOW) == before
        assert service.handoffs() == handoffs
        assert [m["version"] for m in service.models()] == [2]
        assert service.list_leads()[1] == 1
    # Opening with the original file again makes it a new active version (3).
    with Service.open(db_url, models=[model], background=False) as service:
        assert service.model_status("web")["version"] == 3
        assert service.get_lead("ann", as_of=NOW)["engagement"] < before["engagement"]
