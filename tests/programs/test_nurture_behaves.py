"""Programs that behave (#19): a lead enters a program only if the program's model applies to
it (live and in `simulate`); history — imported, or older than `enrol_max_age_hours` when it
arrives — enrols no one; `init` writes its programs switched off; without SMTP e-mails wait
with one warning; every http(s) link of a template is tracked.

Against the real server over HTTP and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from leadscore.config import write_config
from leadscore.events import Event, Lead
from leadscore.model import load_model
from leadscore.programs.definition import load_programs
from leadscore.programs.simulate import Replay
from leadscore.timeutil import US_PER_DAY, iso, now_us
from tests.programs.live_mail import live_mail
from tests.programs.world import MODEL, write_world

pytest.importorskip("aiosmtpd.controller")

ONE_STEP = """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
steps:
  - id: hello
    send_email: {template: hello}
"""
CONSUMERS_ONLY = "applies_to: {traits.segment: {eq: consumer}}\n" + MODEL.lstrip()


def subscribe(lead: str, at: int, **traits: object) -> list[dict[str, object]]:
    return [{"type": "identify", "userId": lead, "timestamp": iso(at), "messageId": f"i-{lead}",
             "traits": {"email": f"{lead}@x.example", "first_name": lead, **traits}},
            {"type": "track", "userId": lead, "timestamp": iso(at), "messageId": f"s-{lead}",
             "event": "Newsletter Subscribed"}]


def test_a_program_takes_only_leads_its_model_applies_to(tmp_path: Path, db_url: str) -> None:
    """Before: business leads entered the consumer welcome program."""
    root = write_world(tmp_path, ONE_STEP)
    (root / "models" / "shop.yaml").write_text(CONSUMERS_ONLY)
    with live_mail(root, db_url) as live:
        t = now_us()
        live.ingest(*subscribe("ann", t, segment="consumer"),
                    *subscribe("biz", t, segment="business"))
        live.run()
        assert [r.recipients for r in live.inbox.received] == [["ann@x.example"]]
        assert live.journey("biz") == []
    # simulate agrees
    model = load_model(root / "models" / "shop.yaml")
    (program,) = load_programs([root / "programs"], templates=root / "templates")
    leads = {"ann": Lead("ann", {"segment": "consumer"}), "biz": Lead("biz",
                                                                      {"segment": "business"})}
    events = [Event(lead, t, "track", "Newsletter Subscribed") for lead in leads]
    journal = Replay(program, model, leads).run(events, t - 1, t + US_PER_DAY)
    assert {a.lead_id for a in journal} == {"ann"}


def test_history_enrols_no_one(tmp_path: Path, db_url: str) -> None:
    """Before: importing months-old subscriptions queued welcome e-mails for them."""
    with live_mail(write_world(tmp_path, ONE_STEP), db_url) as live:
        now = now_us()
        live.ingest(*subscribe("old", now - 30 * US_PER_DAY))          # a late batch
        history = tmp_path / "history.csv"                            # an import, however new
        history.write_text(f"lead_id,timestamp,type,event\nimp,{iso(now)},track,"
                           "Newsletter Subscribed\n")
        assert live.service.import_events(history, kind="events").accepted == 1
        live.ingest(*subscribe("new", now - 3_600_000_000))            # an hour late: fine
        live.run()
        assert [r.recipients for r in live.inbox.received] == [["new@x.example"]]
        assert live.journey("old") == [] and live.journey("imp") == []
        with live.service.db.read() as connection:
            from leadscore.programs.scheduler import history_skipped

            assert history_skipped(connection) == 2
        # The old lead is scored all the same.
        assert any(r["rule"] == "signup" for r in live.service.get_lead("old", "shop")[
            "reasons"])


def test_without_smtp_emails_wait_with_one_warning(tmp_path: Path, db_url: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with live_mail(write_world(tmp_path, ONE_STEP), db_url, smtp_url=None) as live:
        live.ingest(*subscribe("ann", now_us()))
        with caplog.at_level(logging.INFO, "leadscore.programs"):
            for _ in range(3):
                live.run()
        messages = [r.getMessage() for r in caplog.records]
        assert sum("no SMTP server configured" in m for m in messages) == 1
        assert not any("program action failed" in m for m in messages)
        emails = httpx.get(f"{live.base}/api/emails", headers={
            "Authorization": "Bearer adm_secret"}).json()["emails"]
        assert [(e["status"], e["attempts"]) for e in emails] == [("pending", 0)]


def test_init_writes_its_example_programs_switched_off(tmp_path: Path) -> None:
    write_config(tmp_path)
    text = (tmp_path / "programs" / "welcome.yaml").read_text()
    assert "enabled: false" in text and "# Switched off" in text
    (welcome,) = load_programs([tmp_path / "programs"], templates=tmp_path / "templates")
    assert welcome.enabled is False


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
