"""The dashboard over HTTP (no browser): login, keyset pages, the numbers behind the pages."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from leadscore.dashboard.history import history
from leadscore.dashboard.views import active_models, waterfall
from leadscore.demo.serve import DemoStore
from leadscore.service import Service
from leadscore.store import dashboard as queries
from leadscore.store import leads as lead_store
from leadscore.timeutil import parse_timestamp
from tests.dashboard.conftest import signed_in_client


def test_pages_need_the_admin_login(demo_store: DemoStore) -> None:
    from fastapi.testclient import TestClient

    from leadscore.api.app import create_app

    with TestClient(create_app(demo_store.settings)) as anonymous:
        for path in ("/dashboard/", "/dashboard/pipeline", "/dashboard/handoffs",
                     "/dashboard/segments", "/dashboard/programs", "/dashboard/outbox"):
            response = anonymous.get(path, follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/dashboard/login?next=")
        assert anonymous.get("/dashboard/sparklines?model=x").status_code == 401
        refused = anonymous.post("/dashboard/login", data={"token": demo_store.write_key})
        assert refused.status_code == 401
        assert anonymous.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
        assert anonymous.get("/dashboard/static/app.css").status_code == 200
    client = signed_in_client(demo_store)
    cookie = client.cookies.get("leadscore_session")
    assert cookie and client.get("/dashboard/").status_code == 200
    client.post("/dashboard/logout")
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303
    client.__exit__(None, None, None)


def test_keyset_pages_cover_the_ranking_once_in_order(demo_store: DemoStore) -> None:
    service = Service.open(demo_store.settings.db)
    try:
        for sort in queries.SORTS:
            f = queries.LeadFilter(model="b2c-art-supplies", sort=sort)
            seen, cursor, pages = [], None, []
            with service.db.read() as connection:
                while True:
                    page = queries.list_page(connection, f, limit=7, cursor=cursor)
                    pages.append(page)
                    seen += [r["lead_id"] for r in page.rows]
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                back = queries.list_page(connection, f, limit=7, cursor=pages[2].prev_cursor)
            key = "score" if sort == "score" else "latest"
            assert len(seen) == len(set(seen)) == pages[0].total
            assert [r["lead_id"] for r in back.rows] == [r["lead_id"] for r in pages[1].rows]
            values = [r[key] for p in pages for r in p.rows]
            assert values == sorted(values, reverse=True)
    finally:
        service.close()


def test_the_waterfall_and_the_timeline_add_up_to_the_score(demo_store: DemoStore) -> None:
    service = Service.open(demo_store.settings.db)
    try:
        models = active_models(service)
        rows, _ = service.list_leads(limit=40)
        checked = 0
        for row in rows:
            lead = service.get_lead(row["lead_id"], row["model"])
            steps = waterfall(lead["reasons"])
            assert steps[-1]["end"] == __import__("pytest").approx(lead["score"], abs=1e-9)
            active = models[lead["model"]]
            with service.db.read() as connection:
                events = lead_store.events_of(connection, lead["lead_id"])
            replay = history(active.model, active.compiled, lead["lead_id"], lead["traits"],
                             lead["account"] or {}, events, parse_timestamp(lead["as_of"]))
            assert abs(replay.engagement_now - lead["engagement"]) < 1e-6
            assert len(replay.sparkline) == 30
            assert abs(replay.sparkline[-1] - lead["score"]) < 1e-6
            checked += 1
        assert checked == len(rows) > 0
    finally:
        service.close()


def test_every_page_renders_and_a_failed_handoff_is_retried(demo_store: DemoStore) -> None:
    client = signed_in_client(demo_store)
    try:
        leads = client.get("/dashboard/?grade=A&grade=B&temperature=hot&sort=activity")
        assert leads.status_code == 200 and "leads match" in leads.text
        lead_id = re.search(r'data-lead="([^"]+)"', leads.text).group(1)  # type: ignore[union-attr]
        sparks = client.get(f"/dashboard/sparklines?model=b2c-art-supplies&ids={lead_id}")
        assert sparks.status_code == 200
        assert client.get(f"/dashboard/leads/{lead_id}").status_code == 200
        assert client.get("/dashboard/leads/nobody").status_code == 404
        for path in ("/dashboard/pipeline", "/dashboard/models/b2b-software",
                     "/dashboard/evaluation", "/dashboard/handoffs?status=pending"):
            assert client.get(path).status_code == 200, path
        service = client.app.state.service   # type: ignore[attr-defined]
        item = service.handoffs(limit=1)[0][0]
        service.mark_failed(item.id, "HTTP 500", None)
        page = client.get("/dashboard/handoffs?status=failed").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        forged = client.post(f"/dashboard/handoffs/{item.id}/retry", data={"csrf": "x"})
        assert forged.status_code == 403 and service.handoff(item.id).status == "failed"
        client.post(f"/dashboard/handoffs/{item.id}/retry", data={"csrf": csrf})
        assert service.handoff(item.id).status == "pending"
    finally:
        client.__exit__(None, None, None)


# ---- segments, programs, the outbox and a lead's interests


def test_lifecycle_pages_show_segments_programs_and_the_outbox(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from leadscore.api.app import create_app
    from leadscore.config import Settings, hash_token
    from leadscore.programs.live import open_lifecycle
    from leadscore.timeutil import iso, now_us
    from tests.programs.world import write_world

    root = write_world(tmp_path)
    (root / "models" / "shop.yaml").write_text((root / "models" / "shop.yaml").read_text()
                                               + INTERESTS)
    (root / "segments").mkdir()
    (root / "segments" / "subscribers.yaml").write_text(
        "name: subscribers\nmodel: shop\nwhen: {did: {event: Newsletter Subscribed}}\n")
    db = f"sqlite:///{tmp_path / 'life.db'}"
    settings = Settings(db=db, models_dir=str(root / "models"),
                        admin_token_sha256=hash_token("tok"), log_requests=False,
                        link_secret="s3cret")
    service = Service.open(db, models_dir=root / "models", background=False)
    try:
        t0 = now_us() - 60_000_000
        for i, name in enumerate(("Ann", "Bob", "Cid")):
            service.ingest([
                {"type": "identify", "userId": name.lower(), "messageId": f"i{i}",
                 "timestamp": iso(t0), "traits": {"email": f"{name.lower()}@x.example",
                                                  "first_name": name}},
                {"type": "track", "userId": name.lower(), "messageId": f"t{i}",
                 "timestamp": iso(t0), "event": "Newsletter Subscribed",
                 "properties": {"topic": "painting"}}])
        service.ingest([{"type": "identify", "userId": "dee", "messageId": "i9",
                         "timestamp": iso(t0), "traits": {"email": "dee@x.example"}}])
        life = open_lifecycle(service, settings, folder=root)
        life.run_once()
        app = create_app(settings, service)
        app.state.lifecycle = life
        with TestClient(app) as client:
            assert client.post("/dashboard/login", data={"token": "tok"},
                               follow_redirects=False).status_code == 303
            page = client.get("/dashboard/segments").text
            assert "subscribers" in page and re.search(r'class="num size">3<', page)
            page = client.get("/dashboard/segments/subscribers").text
            assert "3 members" in page and "/dashboard/leads/ann" in page
            assert client.get("/dashboard/segments/nope").status_code == 404
            # The segment filter of the leads list: members only.
            listed = client.get("/dashboard/", params={"model": "shop",
                                                       "segment": "subscribers"}).text
            assert "Ann" in listed and "dee@x.example" not in listed
            assert 'option value="subscribers" selected' in listed
            everyone = client.get("/dashboard/", params={"model": "shop"}).text
            assert "dee@x.example" in everyone
            page = client.get("/dashboard/programs").text
            assert re.search(r'class="num entered">3<', page) and "hello" in page
            page = client.get("/dashboard/programs/welcome", params={"lead": "ann"}).text
            assert "Journey of ann" in page and "template=hello content=oil-guide" in page
            assert client.get("/dashboard/programs/nope").status_code == 404
            # No SMTP server is configured: the e-mails wait in the outbox, and it says why.
            page = client.get("/dashboard/outbox").text
            assert "3 e-mails" in page and "Welcome, Ann!" in page and "ann@x.example" in page
            assert "no SMTP server configured" in page
            assert "Welcome" not in client.get("/dashboard/outbox",
                                               params={"status": "sent"}).text.split("<main")[1]
            lead = client.get("/dashboard/leads/ann", params={"model": "shop"}).text
            assert re.search(r'<th scope="row">painting</th><td class="num">5.0</td>', lead)
            assert "/dashboard/programs/welcome?lead=ann" in lead
    finally:
        service.close()


INTERESTS = """
interests:
  - {topic: "{properties.topic}", event: Newsletter Subscribed, points: 5}
"""


def test_the_demo_runs_a_welcome_program_and_an_account_play(demo_store: DemoStore) -> None:
    life = demo_store.lifecycle
    assert life is not None
    assert life["enrolled"].get("welcome", 0) > 10 and life["enrolled"].get("account play")
    assert life["emails"] > 10 and life["exited_mql"] > 0
    client = signed_in_client(demo_store)
    try:
        outbox = client.get("/dashboard/outbox").text
        assert "Welcome to the shop" in outbox and "How teams like" in outbox
        programs = client.get("/dashboard/programs").text
        assert "account play" in programs and "exited (mql)" in programs
        segments = client.get("/dashboard/segments").text
        assert "buying committees" in segments and "engaged painters" in segments
    finally:
        client.__exit__(None, None, None)


def test_accounts_pages_list_accounts_and_their_people(demo_store: DemoStore) -> None:
    client = signed_in_client(demo_store)
    try:
        service = client.app.state.service   # type: ignore[attr-defined]
        listing = client.get("/dashboard/accounts")
        assert listing.status_code == 200 and 'aria-current="page">Accounts' in listing.text
        rows, total = service.list_accounts(model="b2b-software", limit=1)
        assert f'id="accounts-total">{total:,}<' in listing.text and total > 1
        best = rows[0]
        href = f"/dashboard/accounts/{quote(best['account_id'])}"
        assert f"{href}?model=b2b-software" in listing.text
        qualified = client.get("/dashboard/accounts?mqa=yes").text
        assert qualified.count("class=\"mqa\"") == service.list_accounts(mqa=True)[1]
        page = client.get(href)
        assert page.status_code == 200
        account = service.get_account(best["account_id"])
        shown = float(re.search(r'id="account-score" data-score="([^"]+)"',  # type: ignore[union-attr]
                                page.text).group(1))
        assert shown == pytest.approx(account["score"], abs=1e-3)     # decayed to read time
        for person in account["people"]:
            assert f'/dashboard/leads/{quote(person["lead_id"])}?model=b2b-software' in page.text
        for role in account["roles_engaged"]:
            assert f"✓ {role}" in page.text
        lead = client.get(f"/dashboard/leads/{account['people'][0]['lead_id']}").text
        assert f'href="{href}"' in lead
        assert client.get("/dashboard/accounts/nobody").status_code == 404
    finally:
        client.__exit__(None, None, None)
