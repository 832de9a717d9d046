"""Links in program e-mails say what they are for and until when (#16): a click token is no
unsubscribe token, the open pixel's is neither; a GET on an unsubscribe link shows a button
and changes nothing, the POST (RFC 8058 one-click) unsubscribes, once; replays of a click or
an open count once per token and day; `List-Unsubscribe` is plain ASCII.

Against the real server over HTTP and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from leadscore.programs.links import Links
from leadscore.timeutil import US_PER_DAY, now_us
from tests.programs.live_mail import live_mail, mailed
from tests.programs.world import write_world

pytest.importorskip("aiosmtpd.controller")

HTML = '<p>Hi {{ traits.first_name }}, <a href="{{ link("https://shop.example/a", "paint") }}">' \
       'go</a></p>'


@pytest.fixture
def world(tmp_path: Path) -> Path:
    root = write_world(tmp_path)
    (root / "templates" / "hello.html").write_text(HTML)
    return root


def test_each_token_works_for_its_own_purpose_only(world: Path, db_url: str) -> None:
    """Before: a click token worked as an unsubscribe token; the unsubscribe token was the
    open pixel's."""
    with live_mail(world, db_url) as live:
        click, pixel, unsubscribe = mailed(live)
        token = {name: url.rsplit("/", 1)[1].removesuffix(".gif")
                 for name, url in (("c", click), ("o", pixel), ("u", unsubscribe))}
        assert len(set(token.values())) == 3
        for route, other in (("u", "c"), ("u", "o"), ("c", "u"), ("c", "o"), ("o", "u")):
            suffix = ".gif" if route == "o" else ""
            url = f"{live.base}/t/{route}/{token[other]}{suffix}"
            assert httpx.post(url).status_code == 404 if route == "u" else \
                httpx.get(url, follow_redirects=False).status_code == 404, (route, other)
        assert live.count("Unsubscribed") == 0 and live.count("Email Link Clicked") == 0


def test_a_get_shows_a_button_the_post_unsubscribes_once(world: Path, db_url: str) -> None:
    """Before: a plain GET unsubscribed (link scanners do GETs), and a GET then the one-click
    POST counted the unsubscribe rule twice."""
    with live_mail(world, db_url) as live:
        _, _, unsubscribe = mailed(live)
        page = httpx.get(unsubscribe)
        assert page.status_code == 200 and "<form method=post" in page.text
        assert "<button" in page.text and live.count("Unsubscribed") == 0
        for _ in range(3):                                  # the client's POST, then replays
            done = httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
            assert done.status_code == 200 and "unsubscribed" in done.text
        assert live.count("Unsubscribed") == 1
        reasons = live.service.get_lead("ann", "shop")["reasons"]
        assert [r["rule"] for r in reasons].count("unsubscribed") == 1
        live.run(now_us() + 2 * US_PER_DAY)                 # the reminder is not sent
        assert len(live.inbox.received) == 1


def test_replays_of_a_click_or_an_open_count_once_per_token_and_day(world: Path,
                                                                    db_url: str) -> None:
    """Before: 20 replays of one click stored 21 clicks."""
    with live_mail(world, db_url) as live:
        click, pixel, _ = mailed(live)
        for _ in range(20):
            response = httpx.get(click, follow_redirects=False)
            assert response.status_code == 302
            assert response.headers["location"] == "https://shop.example/a"
            assert httpx.get(pixel).headers["content-type"] == "image/gif"
        assert live.count("Email Link Clicked") == 1 and live.count("Email Opened") == 1


def test_an_expired_link_still_leads_on_but_counts_nothing(world: Path, db_url: str) -> None:
    with live_mail(world, db_url) as live:
        old = Links(live.base, "s3cret", "ann", "welcome|ann|1#0", "welcome",
                    now_us() / 1e6 - 800 * 86_400)
        response = httpx.get(old.link("https://shop.example/old", "paint"),
                             follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] == "https://shop.example/old"
        assert httpx.post(old.unsubscribe).status_code == 410
        assert live.count("Email Link Clicked") == 0 and live.count("Unsubscribed") == 0


def test_list_unsubscribe_is_plain_ascii_with_one_click_post(world: Path, db_url: str) -> None:
    """Before: `List-Unsubscribe: =?utf-8?q?=3Chttp…` (RFC 2047), which mail clients cannot
    use."""
    with live_mail(world, db_url) as live:
        _, _, unsubscribe = mailed(live)
        raw = live.inbox.received[0].raw
        header = re.search(rb"\r\nList-Unsubscribe: ([^\r\n]*)\r\n", raw)
        assert header is not None
        assert header.group(1).decode("ascii") == f"<{unsubscribe}>"
        assert unsubscribe.startswith(f"{live.base}/t/u/")
        assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
