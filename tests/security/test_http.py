"""The HTTP side of issue #16 against the app and a real server: the login neither stalls the
server nor takes unbounded bodies and is limited per address; sessions live in the store;
security headers; no CDN; rate limits; nothing secret in the logs."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from leadscore.api import create_app
from leadscore.config import Settings
from leadscore.store import Database
from tests.api.conftest import ADMIN_TOKEN, WRITE_KEY, settings_for
from tests.api.live import serving

LOGIN = "/dashboard/login"


def sign_in(client: TestClient) -> str:
    answer = client.post(LOGIN, data={"token": ADMIN_TOKEN, "next": "/dashboard/"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return str(client.cookies.get("leadscore_session"))


@pytest.mark.slow
def test_bad_logins_do_not_stall_the_server(tmp_path: Path) -> None:
    """Before: `time.sleep(0.2)` in async code; 8 parallel bad logins took /healthz from 5 ms
    to seconds. Now other requests go on while a bad login waits. 24 bad logins from 24
    addresses (a trusted proxy's X-Forwarded-For): blocking, they held the server 4.8 s."""
    env = {"LEADSCORE_TRUSTED_PROXIES": "127.0.0.1"}
    with serving(f"sqlite:///{tmp_path / 's.db'}", tmp_path, env=env) as live:
        def bad_login(i: int) -> int:
            return httpx.post(live.url + LOGIN, data={"token": "wrong"}, timeout=60,
                              headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code

        def healthz_seconds() -> float:
            started = time.perf_counter()
            assert httpx.get(live.url + "/healthz", timeout=60).status_code == 200
            return time.perf_counter() - started

        big = httpx.post(live.url + LOGIN, content=b"token=" + b"x" * 2_000_000,
                         headers={"content-type": "application/x-www-form-urlencoded"},
                         timeout=30)
        assert big.status_code == 413
        assert bad_login(0) == 401       # warm: the session key is made on first use
        with ThreadPoolExecutor(24) as pool:
            logins = pool.map(bad_login, range(1, 25))
            time.sleep(0.1)
            slowest = max(healthz_seconds() for _ in range(5))
            assert sorted(logins) == [401] * 24
        assert slowest < 2.0, slowest


def test_bad_logins_are_limited_per_address(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        codes = [client.post(LOGIN, data={"token": f"guess{i}"}).status_code for i in range(11)]
        assert codes == [401] * 10 + [429]
        refused = client.post(LOGIN, data={"token": ADMIN_TOKEN}, follow_redirects=False)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_logout_ends_the_session_on_the_server(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        cookie = sign_in(client)
        assert client.get("/dashboard/", follow_redirects=False).status_code == 200
        client.post("/dashboard/logout", follow_redirects=False)
    with TestClient(create_app(settings)) as other:   # a stolen copy of the cookie
        other.cookies.set("leadscore_session", cookie)
        assert other.get("/dashboard/", follow_redirects=False).status_code == 303


def test_the_config_file_alone_cannot_mint_a_session(settings: Settings) -> None:
    """Before, the cookie key was derived from `admin_token_sha256` in leadscore.toml."""
    key = hashlib.sha256(b"leadscore dashboard session\x00"
                         + str(settings.admin_token_sha256).encode()).digest()
    expires = str(int(time.time()) + 3600)
    forged = f"{expires}.{hmac.new(key, expires.encode(), hashlib.sha256).hexdigest()}"
    with TestClient(create_app(settings)) as client:
        client.cookies.set("leadscore_session", forged)
        assert client.get("/dashboard/", follow_redirects=False).status_code == 303
        client.cookies.clear()
        cookie = sign_in(client)
        session_id = cookie.split(".")[0]
        assert len(session_id) >= 32 and client.get("/dashboard/").status_code == 200
    db = Database(settings.db)
    with db.read() as connection:
        secret = connection.exec_driver_sql(
            "SELECT value FROM store_settings WHERE key = 'session_key'").scalar()
    db.close()
    assert secret and len(str(secret)) == 64


def test_secure_cookie_and_hsts_behind_a_trusted_proxy(db_url: str) -> None:
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    trusting = settings_for(db_url, trusted_proxies=("127.0.0.1", "testclient"))
    with TestClient(create_app(trusting)) as client:
        answer = client.post(LOGIN, data={"token": ADMIN_TOKEN}, headers=proxied,
                             follow_redirects=False)
        assert "secure" in answer.headers["set-cookie"].lower()
        assert answer.headers["strict-transport-security"].startswith("max-age=")
    with TestClient(create_app(settings_for(db_url))) as client:   # no proxy is trusted
        answer = client.post(LOGIN, data={"token": ADMIN_TOKEN}, headers=proxied,
                             follow_redirects=False)
        assert "secure" not in answer.headers["set-cookie"].lower()
        assert "strict-transport-security" not in answer.headers


def test_security_headers_docs_without_a_cdn_and_a_favicon(client: TestClient) -> None:
    for path in ("/healthz", "/dashboard/login", "/docs", "/api/leads"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert "cdn" not in docs.text.lower() and "<script" not in docs.text
    assert "/v1/batch" in docs.text
    assert client.get("/redoc").status_code == 404
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"


def batch(n: int, start: int = 0) -> dict[str, Any]:
    return {"batch": [{"type": "track", "userId": f"u{start + i}", "event": "Viewed",
                       "messageId": f"m{start + i}"} for i in range(n)]}


def test_rate_limit_per_write_key(db_url: str) -> None:
    """1 message a second: a bucket of 5; a batch counts its messages."""
    settings = settings_for(db_url, rate_limit_per_key=1.0, rate_limit_per_ip=0.0)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/batch", auth=(WRITE_KEY, ""), json=batch(5)).status_code == 200
        refused = client.post("/v1/batch", auth=(WRITE_KEY, ""), json=batch(3, 5))
        assert refused.status_code == 429 and refused.json()["status"] == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 6
        assert client.post("/v1/track", auth=(WRITE_KEY, ""), json={
            "userId": "x", "event": "Viewed"}).status_code == 429
        total = client.get("/api/leads", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert total.json()["total"] == 5     # nothing of a refused request is stored


def test_rate_limit_per_client_address(db_url: str) -> None:
    settings = settings_for(db_url, rate_limit_per_key=0.0, rate_limit_per_ip=2.0,
                            trusted_proxies=("testclient",))
    with TestClient(create_app(settings)) as client:
        one = {"X-Forwarded-For": "198.51.100.1"}
        two = {"X-Forwarded-For": "198.51.100.2"}
        assert client.post("/v1/batch", auth=(WRITE_KEY, ""), json=batch(10),
                           headers=one).status_code == 200
        assert client.post("/v1/batch", auth=(WRITE_KEY, ""), json=batch(1, 10),
                           headers=one).status_code == 429
        assert client.post("/v1/batch", auth=(WRITE_KEY, ""), json=batch(1, 11),
                           headers=two).status_code == 200


def test_the_access_log_never_shows_a_link_token(db_url: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(db_url).__class__(**{**settings_for(db_url).__dict__,
                                                 "log_requests": True})
    with TestClient(create_app(settings)) as client, \
            caplog.at_level(logging.INFO, logger="leadscore.access"):
        client.get("/t/u/SECRETTOKEN123?x=SECRETQUERY")
        client.get("/t/c/SECRETTOKEN456")
    paths = [r.path for r in caplog.records if r.name == "leadscore.access"]  # type: ignore[attr-defined]
    assert paths == ["/t/u/…", "/t/c/…"]
    assert "SECRET" not in caplog.text


def test_statement_parameters_never_reach_an_error_message(db_url: str) -> None:
    from sqlalchemy import text

    db = Database(db_url)
    try:
        with pytest.raises(Exception) as raised, db.begin() as connection:
            connection.execute(text("SELECT * FROM no_such_table WHERE x = :email"),
                               {"email": "ann@private.example"})
        assert "private.example" not in str(raised.value)
    finally:
        db.close()
