"""The Segment HTTP tracking API: auth, gzip, limits, batches, idempotency, bad input."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadscore.timeutil import US_PER_SECOND, iso, now_us
from tests.api.conftest import WRITE_KEY

NOW = iso(now_us() - 60 * US_PER_SECOND)


def track(user: str, event: str = "Clicked", message_id: str | None = None,
          **extra: Any) -> dict[str, Any]:
    body = {"userId": user, "event": event, "timestamp": NOW, **extra}
    if message_id:
        body["messageId"] = message_id
    return body


def post(client: TestClient, path: str, body: Any, *, auth: bool = True,
         headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=data, auth=(WRITE_KEY, "") if auth else None,
                       headers={"Content-Type": "application/json", **(headers or {})})


def lead(client: TestClient, admin: dict[str, str], lead_id: str) -> dict[str, Any]:
    response = client.get(f"/api/leads/{lead_id}", headers=admin, params={"model": "web"})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.mark.parametrize("kind", ["identify", "track", "page", "screen", "group", "alias"])
def test_every_segment_call_answers_success(client: TestClient, kind: str) -> None:
    body: dict[str, Any] = {"userId": "u1", "timestamp": NOW}
    body.update({"track": {"event": "Clicked"}, "page": {"name": "Home",
                 "properties": {"path": "/"}}, "identify": {"traits": {"email": "a@b.org"}},
                 "group": {"groupId": "acme", "traits": {"industry": "software"}},
                 "alias": {"previousId": "anon-1"}}.get(kind, {}))
    response = post(client, f"/v1/{kind}", body)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True


def test_a_tracked_event_is_scored(client: TestClient, admin: dict[str, str]) -> None:
    post(client, "/v1/identify", {"userId": "ann", "traits": {"email": "ann@example.org"},
                                  "timestamp": NOW})
    post(client, "/v1/page", {"userId": "ann", "properties": {"path": "/pricing"},
                              "timestamp": NOW})
    found = lead(client, admin, "ann")
    assert found["fit"] == 10 and found["engagement"] > 4.9
    assert {"score", "grade", "temperature", "stage", "reasons"} <= set(found)


def test_write_key_in_the_body_and_gzip_bodies(client: TestClient, admin: dict[str, str]
                                               ) -> None:
    body = {"writeKey": WRITE_KEY, **track("bo", "Demo Requested")}
    assert post(client, "/v1/track", body, auth=False).status_code == 200
    batch = {"batch": [{"type": "track", **track("bo", message_id="g1")}], "writeKey": WRITE_KEY}
    response = post(client, "/v1/batch", gzip.compress(json.dumps(batch).encode()), auth=False,
                    headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 1, "duplicates": 0, "rejected": []}
    assert lead(client, admin, "bo")["engagement"] > 30


def test_a_resent_message_is_counted_once(client: TestClient) -> None:
    batch = {"batch": [{"type": "track", **track("cy", message_id="m1")},
                       {"type": "track", **track("cy", message_id="m2")}]}
    assert post(client, "/v1/batch", batch).json()["accepted"] == 2
    again = post(client, "/v1/import", batch).json()
    assert again == {"success": True, "accepted": 0, "duplicates": 2, "rejected": []}
    assert post(client, "/v1/track", track("cy", message_id="m1")).json()["success"]


def test_a_batch_stores_the_valid_messages_and_lists_the_rejected(
        client: TestClient, admin: dict[str, str]) -> None:
    batch = {"batch": [
        {"type": "track", **track("di", "Demo Requested", "ok-1")},
        {"type": "track", "event": "Clicked", "timestamp": NOW},              # no id
        "not an object",
        {"type": "track", **track("di", message_id="ok-2")},
        {"type": "fly", "userId": "di"},
        {"type": "track", **track("di", timestamp="1970-01-01T00:00:00Z")},
        {"type": "track", **track("di", properties={"x": "y" * 40_000})},      # over 32 KB
    ]}
    response = post(client, "/v1/batch", batch)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 2
    assert [(r["index"], r["field"]) for r in answer["rejected"]] == [
        (1, "userId"), (2, None), (4, "type"), (5, "timestamp"), (6, None)]
    assert "32 KB" in answer["rejected"][-1]["message"]
    assert lead(client, admin, "di")["engagement"] > 30


def test_a_batch_with_nothing_storable_is_a_400_listing_each(client: TestClient) -> None:
    response = post(client, "/v1/batch", {"batch": [{"type": "track"}, 3]})
    assert response.status_code == 400
    body = response.json()
    assert [e["index"] for e in body["errors"]] == [0, 1]
    assert "no message of the batch could be stored" in body["error"]


def _gzip_bomb() -> bytes:
    return gzip.compress(b'{"batch": [' + b" " * 2_000_000 + b"]}")


BAD = [
    # (path, body, headers, status, words in the error)
    ("/v1/track", b'{"userId": "x", "event": ', {}, 400, "not valid JSON"),
    ("/v1/track", b'{"userId": "x", "event": "\xff\xfe"}', {}, 400, "not valid UTF-8: byte 0xff"),
    ("/v1/track", b"", {}, 400, "empty"),
    ("/v1/track", b"[1, 2]", {}, 400, "JSON object"),
    ("/v1/track", b'{"userId": "x", "event": "e", "properties": {"v": NaN}}', {}, 400,
     "NaN is not a JSON number"),
    ("/v1/track", b'{"userId": "x", "event": "\\ud800"}', {}, 400, "lone surrogate"),
    ("/v1/track", json.dumps({"event": "e"}).encode(), {}, 400, "userId"),
    ("/v1/track", json.dumps({"userId": "x", "event": 5}).encode(), {}, 400, "event"),
    ("/v1/track", json.dumps({"userId": ["x"], "event": "e"}).encode(), {}, 400, "userId"),
    ("/v1/track", json.dumps({"userId": "x"}).encode(), {}, 400, "event"),
    ("/v1/track", json.dumps({"userId": "x", "event": "e", "properties": [1]}).encode(), {},
     400, "properties"),
    ("/v1/track", json.dumps({"userId": "x", "event": "e", "timestamp": "9999-01-01T00:00:00Z"}
                             ).encode(), {}, 400, "timestamp"),
    ("/v1/track", json.dumps({"userId": "x", "event": "e", "timestamp": "yesterday"}).encode(),
     {}, 400, "timestamp"),
    ("/v1/group", json.dumps({"userId": "x"}).encode(), {}, 400, "groupId"),
    ("/v1/alias", json.dumps({"userId": "x"}).encode(), {}, 400, "previousId"),
    ("/v1/track", json.dumps(track("x", properties={"p": "y" * 33_000})).encode(), {}, 413,
     "32 KB limit of a message"),
    ("/v1/batch", json.dumps({"batch": [track("x")] * 8000}).encode(), {}, 413,
     "500 KB limit of a batch"),
    ("/v1/batch", _gzip_bomb(), {"Content-Encoding": "gzip"}, 413, "500 KB limit"),
    ("/v1/batch", b"not gzip", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ("/v1/batch", b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
    ("/v1/batch", json.dumps({"batch": {"a": 1}}).encode(), {}, 400, "batch must be a list"),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "words"), BAD,
                         ids=[f"{b[3]}-{b[4]}" for b in BAD])
def test_bad_input_is_a_4xx_naming_the_problem_and_loses_nothing(
        client: TestClient, admin: dict[str, str], path: str, body: bytes,
        headers: dict[str, str], status: int, words: str) -> None:
    assert post(client, "/v1/track", track("keep", "Demo Requested", "keep-1")).status_code \
        == 200
    before = lead(client, admin, "keep")
    response = post(client, path, body, headers=headers)
    assert response.status_code == status, response.text[:300]
    answer = response.json()
    assert answer["ok"] is False and answer["status"] == status
    assert words in answer["error"] or any(words in json.dumps(e) for e in answer["errors"])
    assert lead(client, admin, "keep")["engagement"] == pytest.approx(before["engagement"],
                                                                      rel=1e-6)


def test_unknown_fields_are_accepted(client: TestClient) -> None:
    body = track("ux", extra_field={"anything": [1, 2]}, integrations={"All": True},
                 context={"library": {"name": "x"}, "whatever": 1})
    assert post(client, "/v1/track", body).status_code == 200


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Basic " + base64.b64encode(b"wrong:").decode()}, 401),
    ({"Authorization": "Basic !!!"}, 401),
    ({"Authorization": "Bearer " + WRITE_KEY}, 401),
])
def test_ingestion_needs_a_known_write_key(client: TestClient, headers: dict[str, str],
                                          status: int) -> None:
    response = client.post("/v1/track", content=json.dumps(track("z")), headers=headers)
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"].startswith("Basic")
