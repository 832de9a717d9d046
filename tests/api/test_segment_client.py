"""The official Segment client (segment-analytics-python), unchanged, against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import WRITE_KEY
from tests.api.live import serving

segment = pytest.importorskip("segment.analytics")


@pytest.mark.parametrize("gzip", [False, True])
def test_the_segment_library_sends_to_leadscore_unchanged(tmp_path: Path, gzip: bool) -> None:
    errors: list[str] = []
    with serving(f"sqlite:///{tmp_path / 'ls.db'}", tmp_path) as live:
        client = segment.Client(WRITE_KEY, host=live.url, gzip=gzip, max_retries=1,
                                on_error=lambda error, batch: errors.append(str(error)),
                                upload_interval=0.05)
        client.identify("ann", {"email": "ann@example.org", "name": "Ann"})
        client.page("ann", "Docs", "Pricing", {"path": "/pricing"})
        client.track("ann", "Demo Requested", {"plan": "team"})
        for i in range(150):
            client.track(f"visitor-{i}", "Clicked", {"n": i}, anonymous_id=f"anon-{i}")
        client.alias("anon-7", "visitor-7")
        client.group("ann", "acme", {"industry": "software"})
        client.flush()
        client.shutdown()
        with live.admin() as admin:
            ann = admin.get("/api/leads/ann", params={"model": "web"}).json()
            listed = admin.get("/api/leads", params={"model": "web", "limit": 1}).json()
    assert errors == []
    assert ann["fit"] == 10 and ann["engagement"] > 34 and ann["mql"] is True
    assert ann["account"] == {"industry": "software"}
    assert listed["total"] == 151
