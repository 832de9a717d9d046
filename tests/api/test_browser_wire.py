"""The browser libraries' wire forms (#24): analytics.js's short paths with text/plain bodies
and the write key in the body or in Basic auth, beacons, the batch form; CORS for the sites
of `cors_origins` only, keys bound to their sites; the first-party library and settings.

The same handlers as `/v1/track`, ...: same validation, idempotency and scoring (checked
through the admin API). Real browsers: tests/browser/test_browser_sdks.py."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from leadscore.api import create_app
from leadscore.api.browser import ANALYTICS_NEXT
from leadscore.config import ConfigError, Settings
from tests.api.conftest import WRITE_KEY, settings_for
from tests.api.test_ingest import NOW, lead

ROOT = Path(__file__).resolve().parents[2]
SITE = "https://www.example.com"
OTHER = "https://evil.example"
BOUND_KEY = "wk_site"
PLAIN = {"Content-Type": "text/plain"}
SHORT = {"t": "track", "p": "page", "i": "identify", "g": "group", "a": "alias", "s": "screen"}


@pytest.fixture
def browser_settings(db_url: str) -> Settings:
    return replace(settings_for(db_url, cors_origins=(SITE, OTHER),
                                write_key_origins=(f"{BOUND_KEY}={SITE}",)),
                   write_keys=(WRITE_KEY, BOUND_KEY))


@pytest.fixture
def client(browser_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(browser_settings), raise_server_exceptions=False) as test_client:
        yield test_client


def send(client: TestClient, path: str, body: dict[str, Any], *, origin: str | None = SITE,
         key: str | None = WRITE_KEY, basic: bool = False) -> Any:
    """As analytics.js sends: text/plain JSON, the key in the body (or Basic auth)."""
    headers = dict(PLAIN)
    if origin:
        headers["Origin"] = origin
    if basic and key:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    elif key:
        body = {**body, "writeKey": key}
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def test_each_short_path_is_its_call_type(client: TestClient, admin: dict[str, str]) -> None:
    bodies = {"t": {"event": "Demo Requested"}, "p": {"properties": {"path": "/pricing"}},
              "i": {"traits": {"email": "ann@example.org"}}, "g": {"groupId": "acme"},
              "a": {"previousId": "anon-0"}, "s": {"name": "Home"}}
    for short, extra in bodies.items():
        response = send(client, f"/v1/{short}", {"userId": "ann", "timestamp": NOW, **extra})
        assert response.status_code == 200, (short, response.text)
        assert response.json()["success"] is True
        assert response.headers["access-control-allow-origin"] == SITE
        assert "access-control-allow-credentials" not in response.headers
    found = lead(client, admin, "ann")
    names = {r["rule"] for r in found["reasons"]}
    # /v1/t was a track, /v1/p a page view, /v1/i an identify: each scored as its kind.
    assert {"requested a demo", "pricing page", "gave an e-mail"} <= names, found["reasons"]


def test_a_short_path_shares_idempotency_and_validation_with_the_long_one(
        client: TestClient) -> None:
    message = {"userId": "bo", "event": "Clicked", "messageId": "m-1", "timestamp": NOW}
    assert send(client, "/v1/t", message).json()["accepted"] == 1
    again = send(client, "/v1/track", message, origin=None, basic=True).json()
    assert again == {"success": True, "accepted": 0, "duplicates": 1, "rejected": []}
    bad = send(client, "/v1/t", {"userId": "bo", "event": "x", "timestamp": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "timestamp"
    assert bad.headers["access-control-allow-origin"] == SITE      # the page can read why
    not_json = client.post("/v1/p", content=b"{not json", headers={**PLAIN, "Origin": SITE})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]


def test_the_write_key_in_basic_auth_or_in_the_body(client: TestClient) -> None:
    message = {"userId": "cy", "event": "Clicked", "timestamp": NOW}
    assert send(client, "/v1/t", message, basic=True).status_code == 200
    assert send(client, "/v1/t", message).status_code == 200
    missing = send(client, "/v1/t", message, key=None)
    assert missing.status_code == 401 and missing.json()["errors"][0]["field"] == "writeKey"
    assert send(client, "/v1/t", message, key="wk_unknown").status_code == 401


def test_a_beacon_is_a_text_plain_post_with_the_key_in_the_body(
        client: TestClient, admin: dict[str, str]) -> None:
    # navigator.sendBeacon: no custom header (no preflight), the batch form, the key inside.
    beacon = {"batch": [{"type": "page", "anonymousId": "anon-9", "messageId": "b-1",
                         "properties": {"path": "/pricing"}, "timestamp": NOW,
                         "writeKey": WRITE_KEY},
                        {"type": "identify", "anonymousId": "anon-9", "userId": "dee",
                         "messageId": "b-2", "traits": {"email": "dee@example.org"},
                         "timestamp": NOW, "writeKey": WRITE_KEY}],
              "sentAt": NOW}
    response = send(client, "/v1/b", beacon)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 2, "duplicates": 0, "rejected": []}
    found = lead(client, admin, "dee")        # the anonymous page view, merged on identify
    assert "pricing page" in {r["rule"] for r in found["reasons"]}


def test_a_preflight_is_answered_for_allowed_sites_only(client: TestClient) -> None:
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type,anonymousid"}
    for path in ("/v1/page", "/v1/t", "/v1/batch", "/sourceConfig/"):
        ok = client.options(path, headers={"Origin": SITE, **asked})
        assert ok.status_code == 204, (path, ok.text)
        assert ok.headers["access-control-allow-origin"] == SITE
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert ok.headers["access-control-allow-headers"] == asked[
            "Access-Control-Request-Headers"]
        assert "access-control-allow-credentials" not in ok.headers
        refused = client.options(path, headers={"Origin": "https://not-listed.example", **asked})
        assert refused.status_code == 403 and "cors_origins" in refused.json()["error"]
        assert "access-control-allow-origin" not in refused.headers


def test_a_write_from_a_site_not_allowed_stores_nothing(
        client: TestClient, admin: dict[str, str]) -> None:
    message = {"userId": "eve", "event": "Demo Requested", "timestamp": NOW}
    for path in ("/v1/t", "/v1/track"):
        refused = send(client, path, message, origin="https://not-listed.example")
        assert refused.status_code == 403, refused.text
        assert refused.json()["errors"] == [{"field": "Origin", "message": "not in cors_origins"}]
    batch = send(client, "/v1/b", {"batch": [{"type": "track", **message}]},
                 origin="http://www.example.com")       # http, not https: another origin
    assert batch.status_code == 403
    assert client.get("/api/leads/eve", headers=admin, params={"model": "web"}
                      ).status_code == 404
    # A server (no Origin) is not a page: unchanged.
    assert send(client, "/v1/track", message, origin=None).status_code == 200


def test_a_bound_key_is_refused_from_another_site(client: TestClient) -> None:
    message = {"userId": "fay", "event": "Clicked", "timestamp": NOW}
    assert send(client, "/v1/t", message, key=BOUND_KEY).status_code == 200
    for basic in (False, True):
        copied = send(client, "/v1/t", message, key=BOUND_KEY, origin=OTHER, basic=basic)
        assert copied.status_code == 403, copied.text
        assert "bound to other sites" in copied.json()["error"]
    # OTHER is in cors_origins: the unbound key works from it.
    assert send(client, "/v1/t", message, origin=OTHER).status_code == 200


def test_no_site_is_allowed_by_default_and_any_only_when_written(db_url: str) -> None:
    message = json.dumps({"writeKey": WRITE_KEY, "userId": "gus", "event": "Clicked",
                          "timestamp": NOW}).encode()
    with TestClient(create_app(settings_for(db_url))) as default:
        refused = default.post("/v1/t", content=message, headers={**PLAIN, "Origin": SITE})
        assert refused.status_code == 403
        assert default.post("/v1/t", content=message, headers=PLAIN).status_code == 200
    with TestClient(create_app(settings_for(db_url, cors_origins=("*",)))) as anywhere:
        ok = anywhere.post("/v1/t", content=message, headers={**PLAIN, "Origin": OTHER})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in ok.headers


@pytest.mark.parametrize(("changes", "message"), [
    ({"cors_origins": ("www.example.com",)}, "not an origin"),
    ({"cors_origins": ("https://www.example.com/page",)}, "not an origin"),
    ({"write_key_origins": ("wk_site",)}, "not `key=origin`"),
    ({"write_key_origins": ("wk_site=*",)}, "name its sites"),
])
def test_a_bad_origin_setting_is_named_at_start(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(settings_for("sqlite:///:memory:", **changes))


def test_the_library_and_its_settings_are_served_first_party(client: TestClient) -> None:
    script = client.get(f"/js/analytics.js/v1/{WRITE_KEY}/analytics.min.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "application/javascript")
    assert "immutable" in script.headers["cache-control"]
    assert b"analytics-next/bundles/" in script.content     # where it loads its chunks from
    chunks = sorted((ANALYTICS_NEXT / "bundles").glob("*.js"))
    assert chunks
    for chunk in chunks:
        served = client.get(f"/js/analytics-next/bundles/{chunk.name}")
        assert served.status_code == 200 and served.content == chunk.read_bytes()
    assert client.get("/js/analytics-next/bundles/../../config.py").status_code == 404
    settings = client.get(f"/js/v1/projects/{WRITE_KEY}/settings",
                          headers={"Origin": SITE, "Host": "leadscore.example:8000"})
    assert settings.status_code == 200
    assert settings.headers["access-control-allow-origin"] == SITE
    segment = settings.json()["integrations"]["Segment.io"]
    assert segment["apiHost"] == "leadscore.example:8000/v1" and segment["protocol"] == "http"
    assert client.get("/js/v1/projects/wk_unknown/settings").status_code == 401
    rudder = client.get("/sourceConfig/", params={"writeKey": WRITE_KEY})
    assert rudder.status_code == 200
    assert rudder.json()["source"]["destinations"] == []
    assert client.get("/sourceConfig/", params={"writeKey": "nope"}).status_code == 401


def test_rudderstacks_identify_traits_in_the_context(client: TestClient,
                                                    admin: dict[str, str]) -> None:
    # RudderStack's browser SDK: Basic auth, application/json, traits in context.traits.
    identify = {"type": "identify", "userId": "hal", "anonymousId": "rs-anon",
                "context": {"traits": {"email": "hal@example.org"}}, "originalTimestamp": NOW}
    assert send(client, "/v1/identify", identify, basic=True).status_code == 200
    found = lead(client, admin, "hal")
    assert found["traits"]["email"] == "hal@example.org" and found["fit"] == 10


def test_the_readme_snippets_are_the_ones_tested_in_chromium() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"```html\n(.*?)```", readme, flags=re.S)
    assert len(shown) == 2
    for block, page in zip(shown, ("segment", "rudderstack"), strict=True):
        tested = (ROOT / "tests" / "fixtures" / "js" / "pages" / f"{page}.html").read_text(
            encoding="utf-8").replace("{{LEADSCORE}}", "https://leadscore.example.com"
                                      ).replace("{{WRITE_KEY}}", "wk_…")
        for line in block.strip().splitlines():
            code = line.split("<!--")[0].strip()
            assert code in tested, (page, code)


def test_rudderstacks_beacon_carries_the_key_in_the_query_string(
        client: TestClient, admin: dict[str, str]) -> None:
    beacon = {"batch": [{"type": "track", "userId": "ida", "event": "Demo Requested",
                         "originalTimestamp": NOW}], "sentAt": NOW}
    response = client.post(f"/beacon/v1/batch?writeKey={WRITE_KEY}", headers={
        **PLAIN, "Origin": SITE}, content=json.dumps(beacon).encode())
    assert response.status_code == 200, response.text
    assert "requested a demo" in {r["rule"] for r in lead(client, admin, "ida")["reasons"]}
    assert client.post("/beacon/v1/batch?writeKey=nope", headers=PLAIN,
                       content=json.dumps(beacon).encode()).status_code == 401
    refused = client.post(f"/beacon/v1/batch?writeKey={WRITE_KEY}", headers={
        **PLAIN, "Origin": "https://not-listed.example"}, content=json.dumps(beacon).encode())
    assert refused.status_code == 403


def test_leadscore_serve_reads_the_sites_from_the_environment(tmp_path: Path) -> None:
    from tests.api.live import serving

    env = {"LEADSCORE_CORS_ORIGINS": f"{SITE},{OTHER}",
           "LEADSCORE_WRITE_KEY_ORIGINS": f"{WRITE_KEY}={SITE}"}
    with serving(f"sqlite:///{tmp_path / 'live.db'}", tmp_path, workers=2, env=env) as live:
        asked = {"Access-Control-Request-Method": "POST"}
        for origin, status in ((SITE, 204), (OTHER, 204), ("https://x.example", 403)):
            preflight = httpx.options(live.url + "/v1/t", headers={"Origin": origin, **asked})
            assert preflight.status_code == status, (origin, preflight.text)
        body = json.dumps({"writeKey": WRITE_KEY, "userId": "jo", "event": "Clicked",
                           "timestamp": NOW}).encode()
        ok = httpx.post(live.url + "/v1/t", content=body, headers={**PLAIN, "Origin": SITE})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == SITE
        copied = httpx.post(live.url + "/v1/t", content=body, headers={**PLAIN, "Origin": OTHER})
        assert copied.status_code == 403, copied.text       # the key is bound to SITE
        script = httpx.get(f"{live.url}/js/analytics.js/v1/{WRITE_KEY}/analytics.min.js")
        assert script.status_code == 200 and len(script.content) > 100_000
