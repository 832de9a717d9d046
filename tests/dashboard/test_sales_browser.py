"""Sales in the dashboard, in a real browser (Playwright driving Chromium) on the real server:
a lead's owner and the feedback buttons (accept moves the stage to sal, reject takes a reason
code), a manual adjustment that shows in the waterfall, the leads list filtered by owner, and
the sales page (open handoffs with breached SLAs first, time to accept, rules' verdicts)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadscore.config import Settings, hash_token
from tests.dashboard.test_browser import ARGS, CHROMIUM, _chromium_problem, shot
from tests.sales.conftest import models_with_routing

pytestmark = pytest.mark.browser
TOKEN = "adm_browser"
ROUTING = """\
teams:
  dach: {members: [anna@shop.example, ben@shop.example]}
rules:
  - {when: {country: DE}, team: dach, accept_within_hours: 0.0003, on_breach: escalate,
     manager: lea@shop.example}
  - {team: dach}
feedback:
  reasons: [not a buyer, student, competitor]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from leadscore.api.app import create_app
    from leadscore.service import Service

    problem = _chromium_problem()
    if problem is not None:
        pytest.skip(problem)
    tmp = tmp_path_factory.mktemp("sales-browser")
    models = models_with_routing(tmp, ROUTING)
    settings = Settings(db=f"sqlite:///{tmp / 'store.db'}", models_dir=str(models),
                        admin_token_sha256=hash_token(TOKEN), log_requests=False)
    service = Service.open(settings.db, models_dir=models, background=False)
    messages = []
    for i, (user, country) in enumerate([("ann", "FR"), ("bob", "FR"), ("cem", "DE")]):
        messages += [{"type": "identify", "userId": user, "messageId": f"i{i}",
                      "traits": {"email": f"{user}@example.org", "country": country,
                                 "name": user.title()}},
                     {"type": "track", "userId": user, "event": "Demo Requested",
                      "messageId": f"d{i}"}]
    service.ingest(messages)
    app = create_app(settings, service)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        service.close()


def test_sales_works_a_lead_from_the_dashboard(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server + "/dashboard/")
        page.get_by_label("Admin token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Leads")

        # The list shows owners and filters by one.
        assert set(page.locator("td.owner").all_inner_texts()) == {
            "anna@shop.example", "ben@shop.example"}
        page.get_by_label("Owner", exact=True).select_option("anna@shop.example")
        page.get_by_role("button", name="Apply filters").click()
        expect(page).to_have_url(re.compile(r".*owner=anna.*"))
        owned = page.locator("table.leads tbody a.lead-link").all_inner_texts()
        assert len(owned) == 2 and set(page.locator("td.owner").all_inner_texts()) == {
            "anna@shop.example"}
        shot(page, "sales-01-leads-by-owner")

        # A lead: its owner; Accept moves it to sal.
        page.goto(server + "/dashboard/leads/ann")
        expect(page.locator("#owner")).to_contain_text("@shop.example")
        expect(page.locator(".stage")).to_have_text("mql")
        page.locator("#fb-accepted").click()
        expect(page.locator("#note")).to_contain_text("Saved: accepted")
        expect(page.locator(".stage")).to_have_text("sal")
        expect(page.locator("#sales-history")).to_contain_text("accepted")
        shot(page, "sales-02-lead-accepted")

        # Reject without a reason is refused; with one it moves the stage to rejected.
        page.goto(server + "/dashboard/leads/bob")
        page.locator("#fb-rejected").click()
        expect(page.locator("#note")).to_contain_text("needs a reason")
        expect(page.locator(".stage")).to_have_text("mql")
        page.get_by_label("Reason code").select_option("student")
        page.locator("#fb-rejected").click()
        expect(page.locator(".stage")).to_have_text("rejected")

        # A manual adjustment is a reason in the waterfall and moves the score.
        before = float(page.locator("#score").get_attribute("data-score") or "nan")
        page.get_by_text("Adjust points").click()
        page.locator("#adj-points").fill("15")
        page.locator("#adj-reason").fill("met at the trade fair")
        page.locator("#adj-save").click()
        expect(page.locator("#note")).to_contain_text("Saved: +15 points")
        assert float(page.locator("#score").get_attribute("data-score") or "nan") == \
            before + 15
        expect(page.locator("#waterfall")).to_contain_text("met at the trade fair")
        shot(page, "sales-03-lead-adjusted")

        # The sales page: cem's SLA (about a second) has run out, so it comes first.
        time.sleep(1.2)
        page.get_by_role("link", name="Sales", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Sales")
        first = page.locator("#open-handoffs tbody tr").first
        expect(first).to_contain_text("cem")
        expect(first).to_contain_text("breached")
        expect(page.locator("#owner-medians tbody tr")).to_have_count(1)
        expect(page.locator("#rule-verdicts")).to_contain_text(
            "1 of 3 rejected as student")
        shot(page, "sales-04-sales-page")
        browser.close()
    assert errors == []
