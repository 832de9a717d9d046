"""E-mailing only the person who asked, with text they cannot turn into headers (#16): an
`email` trait is exactly one valid address or no e-mail goes out; the subject is one line;
opt-outs, the weekly limit and suppressions hold per address, whatever lead id it comes
under; opt-outs come from the signed link, the admin API or a trusted write key only.

Against the real server over HTTP and a real SMTP server (aiosmtpd) recording envelopes."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from leadscore.store.suppressions import is_suppressed
from leadscore.timeutil import US_PER_DAY, iso, now_us
from tests.programs.live_mail import ADMIN, SERVER_KEY, live_mail
from tests.programs.world import write_world

pytest.importorskip("aiosmtpd.controller")

ONE_STEP = """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
exit: [mql, unsubscribed]
steps:
  - id: hello
    send_email: {template: hello}
"""


def subscribe(lead: str, email: object, first_name: str = "Ann") -> list[dict[str, object]]:
    t = iso(now_us())
    return [{"type": "identify", "userId": lead, "timestamp": t, "messageId": f"i-{lead}",
             "traits": {"email": email, "first_name": first_name}},
            {"type": "track", "userId": lead, "timestamp": t, "messageId": f"s-{lead}",
             "event": "Newsletter Subscribed"}]


def test_a_list_of_addresses_gets_no_email_and_the_lead_page_says_why(
        tmp_path: Path, db_url: str) -> None:
    """Before: `email: "a@x.example, b@y.example"` made one e-mail go to both (RCPT listed
    them)."""
    with live_mail(write_world(tmp_path, ONE_STEP), db_url) as live:
        live.ingest(*subscribe("mallory", "a@x.example, b@y.example"))
        live.ingest(*subscribe("ann", "ann@x.example"))
        live.run()
        assert [(r.recipients, r.message["To"]) for r in live.inbox.received] == [
            (["ann@x.example"], "ann@x.example")]
        detail = dict(live.journey("mallory"))["send_email"] or ""
        assert detail.startswith("not sent: the email trait is not one valid address")
        # The reason is on the lead's dashboard page.
        with httpx.Client(base_url=live.base) as client:
            client.post("/dashboard/login", data={"token": ADMIN})
            page = client.get("/dashboard/leads/mallory").text
        assert "Program e-mail: <strong>none</strong>" in page
        assert "not one valid address" in page


def test_traits_cannot_add_headers_and_the_subject_is_one_short_line(
        tmp_path: Path, db_url: str) -> None:
    """Before: an attacker-chosen `first_name` landed in the subject as it was."""
    with live_mail(write_world(tmp_path, ONE_STEP), db_url) as live:
        live.ingest(*subscribe("ann", "ann@x.example",
                               "Ann\r\nBcc: eve@evil.example\r\n\r\nbody" + "x" * 500))
        live.run()
        [mail] = live.inbox.received
        assert mail.recipients == ["ann@x.example"]
        headers = mail.raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert mail.message["Bcc"] is None and not any(h.startswith(b"Bcc") for h in headers)
        subject = str(mail.message["Subject"])
        assert subject.startswith("Welcome, Ann Bcc: eve@evil.example body")
        assert len(subject) <= 200 and "\n" not in subject


def test_an_unsubscribe_holds_for_the_address_under_any_lead_id(tmp_path: Path,
                                                               db_url: str) -> None:
    """Before: unsubscribes were per lead id, so a new id with the same address was
    e-mailed again."""
    with live_mail(write_world(tmp_path, ONE_STEP), db_url) as live:
        live.ingest(*subscribe("ann", "ann@x.example"))
        live.run()
        [mail] = live.inbox.received
        link = str(mail.message["List-Unsubscribe"]).strip("<>")
        assert httpx.post(link).status_code == 200
        live.ingest(*subscribe("ann-again", "  ANN@X.example"))       # spaces are refused
        live.ingest(*subscribe("ann-again2", "ANN@X.example"))
        live.run()
        assert len(live.inbox.received) == 1
        assert live.journey("ann-again2") == [("exit", "unsubscribed")]


def test_the_weekly_limit_counts_the_address_not_the_lead_id(tmp_path: Path,
                                                            db_url: str) -> None:
    with live_mail(write_world(tmp_path, ONE_STEP), db_url, emails_per_week=1) as live:
        live.ingest(*subscribe("ann", "ann@x.example"))
        live.run()
        live.ingest(*subscribe("ann-2", "Ann@x.example"))
        live.run()
        assert [r.recipients for r in live.inbox.received] == [["ann@x.example"]]
        assert live.journey("ann-2") == []          # waiting for the week to pass
        live.run(now_us() + 8 * US_PER_DAY)
        assert len(live.inbox.received) == 2


def test_opt_outs_come_from_the_link_the_admin_or_a_trusted_key_only(
        tmp_path: Path, db_url: str) -> None:
    """Before: a write-key `track Unsubscribed` opted a victim out for ever."""
    two_mails = ONE_STEP + "  - wait: {days: 1}\n  - id: again\n    send_email: " \
                           "{template: reminder}\n"
    with live_mail(write_world(tmp_path, two_mails), db_url) as live:
        live.ingest(*subscribe("ann", "ann@x.example"), *subscribe("bob", "bob@x.example"))
        live.run()
        assert len(live.inbox.received) == 2
        t = iso(now_us())
        # The public key: scored, opts no one out.
        live.ingest({"type": "track", "userId": "ann", "event": "Unsubscribed",
                     "timestamp": t, "messageId": "u1"})
        # A trusted server-side key: bob's address is opted out.
        live.ingest({"type": "track", "userId": "bob", "event": "Unsubscribed",
                     "timestamp": t, "messageId": "u2"}, key=SERVER_KEY)
        later = now_us() + 2 * US_PER_DAY
        live.run(later)
        assert [r.recipients for r in live.inbox.received[2:]] == [["ann@x.example"]]
        assert live.journey("bob")[-1] == ("exit", "unsubscribed")
        # The way back: the admin API lifts bob's opt-out.
        with live.service.db.read() as connection:
            assert is_suppressed(connection, "bob@x.example")
        assert live.admin("/api/emails/resubscribe", {"address": "BOB@x.example"}).json()[
            "address"] == "event"
        with live.service.db.read() as connection:
            assert not is_suppressed(connection, "bob@x.example")
        # A trusted `Unsubscribed` in a batch is refused with its bad message: no opt-out;
        # a trusted `Opted In` lifts an opt-out the same way the admin API does.
        response = live.ingest({"type": "track", "userId": "bob", "event": "Unsubscribed",
                                "timestamp": "not a time", "messageId": "u3"},
                               {"type": "track", "userId": "ann", "event": "Seen",
                                "messageId": "x1"}, key=SERVER_KEY)
        assert len(response.json()["rejected"]) == 1
        with live.service.db.read() as connection:
            assert not is_suppressed(connection, "bob@x.example")
        # An admin opt-out; a trusted `Opted In` lifts it.
        assert live.admin("/api/emails/suppressions", {"address": "ann@x.example"}).json()[
            "suppressed"] is True
        live.ingest({"type": "track", "userId": "ann", "event": "Opted In",
                     "messageId": "o1"}, key=SERVER_KEY)
        with live.service.db.read() as connection:
            assert not is_suppressed(connection, "ann@x.example")
        # A bad address is refused with a 422 naming it.
        bad = live.admin("/api/emails/suppressions", {"address": "a@x.example, b@y.example"})
        assert bad.status_code == 422 and "address" in bad.text


def test_without_a_link_secret_nothing_is_sent_and_no_link_works(
        tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Before: without `link_secret` (and admin token) links were signed with a public
    constant key."""
    with live_mail(write_world(tmp_path, ONE_STEP), db_url, link_secret=None) as live:
        live.ingest(*subscribe("ann", "ann@x.example"))
        with caplog.at_level(logging.WARNING, "leadscore.programs"):
            live.run()
            live.run()
        assert live.inbox.received == [] and live.journey("ann") == []
        warnings = [r for r in caplog.records if "link_secret" in r.getMessage()]
        assert len(warnings) == 1
        from leadscore.programs.links import Links

        forged = Links(live.base, "leadscore", "ann", "x", "welcome", now_us() / 1e6)
        assert httpx.post(forged.unsubscribe).status_code == 404


def test_a_program_email_failing_n_times_is_a_dead_letter_until_retried(
        tmp_path: Path, db_url: str) -> None:
    """Before: a failed program action was retried for ever."""
    from tests.alerts.receiver import free_port

    with live_mail(write_world(tmp_path, ONE_STEP), db_url, delivery_max_attempts=2,
                   smtp_url=f"smtp://127.0.0.1:{free_port()}") as live:     # nobody listens
        live.ingest(*subscribe("ann", "ann@x.example"))
        for hours in range(4):
            live.run(now_us() + hours * 3_600_000_000)

        def emails(status: str) -> list[dict[str, object]]:
            return list(httpx.get(f"{live.base}/api/emails", params={"status": status},
                                  headers={"Authorization": f"Bearer {ADMIN}"}).json()[
                "emails"])

        [dead] = emails("dead")
        assert dead["attempts"] == 2 and "Connection refused" in str(dead["last_error"])
        listed = httpx.get(f"{live.base}/api/programs/actions/dead",
                           headers={"Authorization": f"Bearer {ADMIN}"}).json()["actions"]
        assert [(d["id"], d["kind"]) for d in listed] == [(dead["id"], "email")]
        with httpx.Client(base_url=live.base) as browser:       # and the dashboard says so
            browser.post("/dashboard/login", data={"token": ADMIN})
            assert 'id="dead-letters"' in browser.get("/dashboard/outbox").text
        key = quote(str(dead["id"]), safe="")           # `welcome|ann|1#0`
        assert live.admin(f"/api/programs/actions/{key}/retry", {}).status_code == 200
        assert [e["id"] for e in emails("pending")] == [dead["id"]]
        assert live.admin("/api/programs/actions/nope/retry", {}).status_code == 404


def test_an_address_gets_at_most_n_emails_an_hour(tmp_path: Path, db_url: str) -> None:
    quick = ONE_STEP + "  - wait: {minutes: 1}\n  - id: again\n    send_email: " \
                       "{template: reminder}\n"
    with live_mail(write_world(tmp_path, quick), db_url,
                   emails_per_address_per_hour=1) as live:
        t0 = now_us()
        live.ingest(*subscribe("ann", "ann@x.example"))
        live.run(t0)
        live.run(t0 + 2 * 60_000_000)
        assert len(live.inbox.received) == 1            # the second waits for the hour
        live.run(t0 + 61 * 60_000_000)
        assert len(live.inbox.received) == 2


def test_the_global_send_rate_spaces_deliveries(tmp_path: Path, db_url: str) -> None:
    with live_mail(write_world(tmp_path, ONE_STEP), db_url, email_rate_per_second=4.0) as live:
        live.ingest(*[m for i in range(10) for m in subscribe(f"p{i}", f"p{i}@x.example")])
        live.run()
        times = [r.at for r in live.inbox.received]
        assert len(times) == 10
        assert times[-1] - times[0] >= 1.2      # a burst of 4, then 6 more at 4 a second


def test_double_opt_in_sends_program_email_only_after_the_signed_confirmation(
        tmp_path: Path, db_url: str) -> None:
    with live_mail(write_world(tmp_path, ONE_STEP), db_url, double_opt_in=True) as live:
        live.ingest(*subscribe("ann", "ann@x.example"), *subscribe("bob", "bob@x.example"))
        live.run()
        asked = {r.recipients[0]: r.message for r in live.inbox.received}
        assert set(asked) == {"ann@x.example", "bob@x.example"}
        assert all(m["Subject"] == "Please confirm your subscription" for m in asked.values())
        link = re.search(r"(http\S+/t/y/\S+)", asked["ann@x.example"].get_body(
            ("plain",)).get_content())
        assert link is not None
        # A GET (a link scanner) confirms nothing; the button's POST does.
        assert "<button" in httpx.get(link.group(1)).text
        live.run()
        assert len(live.inbox.received) == 2
        assert httpx.post(link.group(1)).status_code == 200
        live.run()
        live.run()                  # the confirmation event wakes ann's enrolment
        welcome = [r for r in live.inbox.received[2:]]
        assert [(r.recipients, str(r.message["Subject"])) for r in welcome] == [
            (["ann@x.example"], "Welcome, Ann!")]
        # bob never confirmed: after the week his e-mail is not sent, and he is not asked again.
        live.run(now_us() + 8 * US_PER_DAY)
        assert len(live.inbox.received) == 3
        assert dict(live.journey("bob"))["send_email"].startswith(
            "not sent: the address did not confirm")
