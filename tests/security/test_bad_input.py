"""Input an outsider with the public write key may send: each bad message is that message's
400 (named), never a 500 and never its batch's failure (issue #16)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from leadscore.api.body import MAX_DEPTH
from leadscore.store import Database, migrate
from leadscore.store.schema import leads, schema_version
from tests.api.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JSON = {"content-type": "application/json"}


def track(user: str = "ann", event: str = "Viewed", **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, **extra}


def test_non_ascii_tokens_are_refused_not_a_500(client: TestClient) -> None:
    for header in ("Bearer é".encode("latin-1"), b"Basic \xe9t\xe9"):
        answer = client.get("/api/leads", headers={"Authorization": header})
        assert answer.status_code == 401, answer.text
    answer = client.post("/v1/track", json={**track(), "writeKey": "wké"})
    assert answer.status_code == 401 and answer.json()["errors"][0]["field"] == "writeKey"
    basic = base64.b64encode("wké:".encode()).decode()
    answer = client.post("/v1/track", json=track(), headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 401


def test_a_number_out_of_range_is_its_message_400(client: TestClient,
                                                  writer: tuple[str, str]) -> None:
    answer = client.post("/v1/track", auth=writer, headers=JSON,
                         content=b'{"userId": "ann", "event": "Paid", '
                                 b'"properties": {"amount": 1e400}}')
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "properties.amount"
    assert "finite" in answer.json()["error"]
    body = (b'{"batch": [{"type": "identify", "userId": "bob", "traits": {"n": [1, -1e999]}},'
            b' {"type": "track", "userId": "bob", "event": "Ok"}]}')
    answer = client.post("/v1/batch", auth=writer, headers=JSON, content=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert answer.json()["rejected"] == [{"index": 0, "field": "traits.n[1]", "message":
                                          answer.json()["rejected"][0]["message"]}]
    assert client.get("/api/leads?q=bob", headers=ADMIN).status_code == 200


def test_a_nul_character_is_its_message_400(client: TestClient,
                                            writer: tuple[str, str]) -> None:
    """PostgreSQL's text and jsonb cannot hold NUL: before, the whole batch was a 500."""
    batch = [track("a\u0000b"), track(properties={"note": "x\u0000"}),
             {"type": "identify", "userId": "cat", "traits": {"na\u0000me": "Cat"}},
             track("cat", "Fine", properties={"path": "\\u0000 is text"})]
    answer = client.post("/v1/batch", auth=writer, json={"batch": batch})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert [(r["index"], r["field"]) for r in answer.json()["rejected"]] == [
        (0, "userId"), (1, "properties.note"), (2, "traits.na\u0000me")]
    assert client.post("/v1/track", auth=writer, json=track("a\u0000")).status_code == 400


def test_a_non_object_context_beside_a_batch_context(client: TestClient,
                                                     writer: tuple[str, str]) -> None:
    answer = client.post("/v1/batch", auth=writer, json={
        "context": {"library": {"name": "x"}},
        "batch": [track(context="not an object"), track(context=["a"]), track(event="Ok")]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert [(r["index"], r["field"]) for r in answer.json()["rejected"]] == [
        (0, "context"), (1, "context")]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_json_nested_too_deep_is_a_clear_400(client: TestClient, writer: tuple[str, str],
                                             depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = f'{{"userId": "ann", "event": "Deep", "properties": {{"v": {nested}}}}}'
    answer = client.post("/v1/track", auth=writer, headers=JSON, content=body.encode())
    assert answer.status_code == 400
    assert f"more than {MAX_DEPTH} levels" in answer.json()["error"]
    fine = "[" * 10 + "]" * 10      # brackets in strings do not count
    body = f'{{"userId": "ann", "event": "Ok", "properties": {{"v": {fine}, "s": "{"[" * 99}"}}}}'
    assert client.post("/v1/track", auth=writer, headers=JSON,
                       content=body.encode()).status_code == 200


def test_unknown_filter_values_are_a_422_naming_the_allowed(client: TestClient,
                                                            writer: tuple[str, str]) -> None:
    client.post("/v1/track", auth=writer, json=track())
    for query, field, allowed in (("temperature=hott", "temperature", "hot, warm, cold, dead"),
                                  ("grade=G", "grade", "A, B, C, D, E, F"),
                                  ("stage=lurker", "stage", "visitor"),
                                  ("model=nope", "model", "web")):
        answer = client.get(f"/api/leads?{query}", headers=ADMIN)
        assert answer.status_code == 422, query
        assert answer.json()["errors"][0]["field"] == field and allowed in answer.json()["error"]
    assert client.get("/api/leads?temperature=cold&model=web", headers=ADMIN).json()["total"] == 1


def test_rejected_messages_of_an_accepted_batch_are_logged_without_content(
        client: TestClient, writer: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="leadscore.ingest"):
        answer = client.post("/v1/batch", auth=writer, json={"batch": [
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@secret.example"},
             "timestamp": "1999-01-01T00:00:00Z"}, track()]})
    assert answer.json()["accepted"] == 1
    (record,) = [r for r in caplog.records if r.getMessage() == "message rejected"]
    assert record.levelno == logging.WARNING
    assert (record.index, record.field) == (0, "timestamp")   # type: ignore[attr-defined]
    assert "secret.example" not in str(record.__dict__)


def test_a_message_without_message_id_counts_again_later_but_not_on_retry(
        client: TestClient) -> None:
    """Without messageId or a time of its own, the minute it arrived makes its id: a retry
    within the minute is a duplicate; the same event a day later counts again."""
    service = client.app.state.service   # type: ignore[attr-defined]
    login = track("dan", "Logged In")
    day = 86_400_000_000
    first = service.ingest([dict(login)], received_at=1_800_000_000_000_000)
    retry = service.ingest([dict(login)], received_at=1_800_000_000_000_000 + 20_000_000)
    later = service.ingest([dict(login)], received_at=1_800_000_000_000_000 + day)
    assert (first.accepted, retry.duplicates, later.accepted) == (1, 1, 1)
    timed = {**login, "timestamp": "2027-01-15T08:00:00Z"}   # its own time: a resend is one
    assert service.ingest([dict(timed)], received_at=1_800_000_000_000_000).accepted == 1
    assert service.ingest([dict(timed)], received_at=1_800_000_000_000_000 + day
                          ).duplicates == 1


def test_stored_infinity_no_longer_breaks_the_text_search(tmp_path: Any) -> None:
    """A SQLite store written before non-finite numbers were refused holds `Infinity`, which
    SQLite's JSON functions refuse: every text search was a 500. Migrating repairs it."""
    from leadscore.api import create_app
    from tests.api.conftest import settings_for

    url = f"sqlite:///{tmp_path / 'old.db'}"
    settings = settings_for(url)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/identify", auth=("wk_test", ""),
                    json={"userId": "eve", "traits": {"email": "eve@x.example", "n": 1}})
    db = Database(url)
    with db.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE leads SET traits = '{\"email\": \"eve@x.example\", \"n\": Infinity}'")
        connection.execute(delete(schema_version).where(schema_version.c.version >= 8))
    with db.read() as connection, pytest.raises(Exception, match="malformed JSON"):
        connection.exec_driver_sql("SELECT json_extract(traits, '$.email') FROM leads").all()
    migrate(db)
    with db.read() as connection:
        assert connection.execute(select(leads.c.traits)).scalar() == {
            "email": "eve@x.example", "n": None}
    db.close()
    with TestClient(create_app(settings)) as client:
        answer = client.get("/api/leads?q=eve@x", headers=ADMIN)
        assert answer.status_code == 200 and answer.json()["total"] == 1


def test_admin_input_found_by_fuzzing_is_a_4xx(client: TestClient) -> None:
    """Found by tests/security/test_fuzz.py: a model whose YAML escape makes a lone surrogate
    (its 422 could not be encoded), integers past 64 bits (SQLite's OverflowError)."""
    answer = client.put("/api/models/x", content=b'{"\\uda28\\udca6": 1}',
                        headers={**ADMIN, "content-type": "text/plain"})
    assert answer.status_code == 422 and "\\uda28" in answer.text
    huge = "9" * 30
    for path in (f"/api/emails?offset={huge}", f"/api/leads?offset={huge}",
                 f"/api/handoffs?offset={huge}", f"/api/accounts?offset={huge}"):
        assert client.get(path, headers=ADMIN).status_code == 422, path
    assert client.post(f"/api/models/web/restore/{huge}", headers=ADMIN).status_code == 422


def test_a_nul_in_the_url_is_a_400(client: TestClient) -> None:
    """Found by fuzzing on PostgreSQL: `?model=a%00b` reached a text comparison (a 500)."""
    for path in ("/api/accounts?model=a%00b", "/api/leads?q=%00", "/api/leads/a%00b"):
        answer = client.get(path, headers=ADMIN)
        assert answer.status_code == 400 and "NUL" in answer.json()["error"], path
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.post("/api/models/web/restore/4611686018427387903",
                       headers=ADMIN).status_code == 422
