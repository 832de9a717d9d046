"""Link scanners and crawlers are no readers (#19): a tracked click within
`link_scanner_seconds` of its e-mail, or from a mail gateway's scanner, and an open by a
crawler are stored as filtered events, never an `Email Link Clicked` that scores; the
person's own click that day still counts. The counts per filter are on the admin API and the
dashboard. Against the real server over HTTP and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from leadscore.filters import Filters
from tests.programs.live_mail import ADMIN, Live, live_mail, mailed
from tests.programs.world import write_world

pytest.importorskip("aiosmtpd.controller")

BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
                         "(KHTML, like Gecko) Version/17.5 Safari/605.1.15"}
SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; Mimecast URL protect)"}
CRAWLER = {"User-Agent": "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"}
SECONDS = 8.0      # room for a loaded machine between the mail being made and the click


HTML = '<p>Hi {{ traits.first_name }}, <a href="https://shop.example/a" data-topic="paint">' \
       'go</a></p>'


def _filtered(live: Live) -> dict[str, int]:
    with live.service.db.read() as connection:
        return dict(connection.exec_driver_sql(
            "SELECT filtered, count(*) FROM events WHERE filtered IS NOT NULL "
            "GROUP BY filtered").all())


def _rules(live: Live) -> list[str]:
    return [r["rule"] for r in live.service.get_lead("ann", "shop")["reasons"]]


def test_a_scanners_clicks_are_stored_not_counted_the_persons_click_is(
        tmp_path: Path, db_url: str) -> None:
    world = write_world(tmp_path)
    (world / "templates" / "hello.html").write_text(HTML)
    with live_mail(world, db_url, filters=Filters(link_scanner_seconds=SECONDS)) as live:
        sent = time.monotonic()           # before the mail is made: the time since is less
        click, pixel, _ = mailed(live)
        mailed_by = time.monotonic()      # after it was made: the time since is more
        # The gateway fetches the link as the mail arrives, with a browser's agent.
        first = httpx.get(click, headers=BROWSER, follow_redirects=False)
        assert first.status_code == 302 and first.headers["location"] == \
            "https://shop.example/a"
        assert time.monotonic() - sent < SECONDS, "the machine was too slow for this test"
        assert _filtered(live) == {"link_scanners": 1}
        assert "clicked" not in _rules(live)
        # Later: a scanner that names itself (a filtered click of the link is stored once a
        # day, as any replay), and a crawler opening the pixel.
        time.sleep(max(0.0, SECONDS - (time.monotonic() - mailed_by)) + 0.2)
        assert httpx.get(click, headers=SCANNER, follow_redirects=False).status_code == 302
        assert httpx.get(pixel, headers=CRAWLER).headers["content-type"] == "image/gif"
        assert _filtered(live) == {"link_scanners": 1, "bots": 1}
        assert "clicked" not in _rules(live) and "opened" not in _rules(live)
        # The person, after them: the click and the open count, once a day as before.
        for _ in range(2):
            assert httpx.get(click, headers=BROWSER, follow_redirects=False).status_code == 302
            assert httpx.get(pixel, headers=BROWSER).status_code == 200
        assert _rules(live).count("clicked") == 1 and _rules(live).count("opened") == 1
        assert live.count("Email Link Clicked") == 2       # the scanner's and the person's
        # Counted per filter for the admin and on the dashboard.
        api = httpx.get(f"{live.base}/api/filters",
                        headers={"Authorization": f"Bearer {ADMIN}"})
        assert api.status_code == 200
        assert api.json()["filtered"] == {"link_scanners": 1, "bots": 1}
        assert api.json()["filters"]["link_scanner_seconds"] == SECONDS
        assert httpx.get(f"{live.base}/api/filters").status_code == 401
        with httpx.Client(base_url=live.base) as browser:
            signed = browser.post("/dashboard/login", data={"token": ADMIN,
                                                            "next": "/dashboard/"})
            assert signed.status_code in (200, 303)
            page = browser.get("/dashboard/").text
        assert re.search(r'id="filtered"[^>]*>2 events filtered: bots 1 · link scanners 1<',
                         page), page
