"""Every link of a program e-mail tracked (#19 item 3): each http(s) link of a template's
HTML and text body becomes a signed click link (its topic from `data-topic` or the content
item), `data-track="no"` leaves one as it is. Against the real server over HTTP and a real
SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from leadscore.timeutil import iso, now_us
from tests.programs.live_mail import live_mail
from tests.programs.world import write_world

pytest.importorskip("aiosmtpd.controller")

ONE_STEP = """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - id: hello
    send_email: {template: hello}
"""


def subscribe(lead: str, at: int) -> list[dict[str, object]]:
    return [{"type": "identify", "userId": lead, "timestamp": iso(at), "messageId": f"i-{lead}",
             "traits": {"email": f"{lead}@x.example", "first_name": lead}},
            {"type": "track", "userId": lead, "timestamp": iso(at), "messageId": f"s-{lead}",
             "event": "Newsletter Subscribed"}]


def test_every_link_of_a_template_is_tracked_unless_it_opts_out(tmp_path: Path,
                                                                 db_url: str) -> None:
    """Before: a plain `<a href>` went out untracked, so its clicks never scored."""
    root = write_world(tmp_path, ONE_STEP)
    (root / "templates" / "hello.html").write_text(
        '<p><a href="https://shop.example/oil" data-topic="painting">oil</a> '
        '<a href="https://shop.example/legal" data-track="no">legal</a></p>')
    (root / "templates" / "hello.txt").write_text(
        "Subject: Hi\nRead https://shop.example/paper.\n")
    with live_mail(root, db_url) as live:
        live.ingest(*subscribe("ann", now_us()))
        live.run()
        [mail] = live.inbox.received
        html = mail.message.get_body(("html",)).get_content()
        text = mail.message.get_body(("plain",)).get_content()
        assert 'href="https://shop.example/legal"' in html
        assert "https://shop.example/oil" not in html and "shop.example/paper" not in text
        oil = re.search(r'href="([^"]+/t/c/[^"]+)"', html)
        paper = re.search(r"Read (\S+/t/c/\S+)\.", text)
        assert oil and paper
        response = httpx.get(oil.group(1), follow_redirects=False)
        assert response.headers["location"] == "https://shop.example/oil"
        assert httpx.get(paper.group(1), follow_redirects=False).headers[
            "location"] == "https://shop.example/paper"
        clicks = live.service.get_lead("ann", "shop")["reasons"]
        # The world's `clicked` rule counts clicks with a topic: the oil link has one.
        assert any(r["rule"] == "clicked" for r in clicks)
