"""`which_filter`: the one verdict the service and the batch engines share — addresses in
CIDR ranges, user agents, link scanners by agent or by time since the e-mail, our own
people by e-mail domain or lead id; filters on events before filters on the lead."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leadscore.events import Event, Lead
from leadscore.filters import CLICKED, Filters, event_filter, lead_filter, which_filter

OFFICE = Filters(ips=["10.0.0.0/8", "2001:db8::/32", "198.51.100.7"],
                 user_agents=["^Acme-Monitor/"], internal_domains=["@Shop.Example"],
                 lead_ids=["qa-bot"])
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"


def page(**context: str) -> Event:
    return Event("ann", 0, "page", path="/", context=context)


def click(seconds: float | None, agent: str = BROWSER) -> Event:
    return Event("ann", 0, "track", CLICKED, context={"userAgent": agent},
                 properties={} if seconds is None else {"seconds_since_sent": seconds})


@pytest.mark.parametrize(("ip", "caught"), [
    ("10.1.2.3", True), ("11.0.0.1", False), ("2001:db8::1", True), ("2001:db9::1", False),
    ("198.51.100.7", True), ("198.51.100.8", False), (" 10.0.0.1 ", True),
    ("not an address", False), ("", False)])
def test_addresses_in_the_ranges_are_filtered(ip: str, caught: bool) -> None:
    assert event_filter(page(ip=ip), OFFICE) == ("ips" if caught else None)


def test_own_user_agent_patterns_then_the_maintained_list() -> None:
    assert event_filter(page(userAgent="Acme-Monitor/3.1"), OFFICE) == "user_agents"
    assert event_filter(page(userAgent="x Acme-Monitor/3.1"), OFFICE) is None
    assert event_filter(page(userAgent="curl/8.5.0"), OFFICE) == "bots"
    assert event_filter(page(userAgent=BROWSER), OFFICE) is None
    assert event_filter(page(), OFFICE) is None


@pytest.mark.parametrize(("event", "verdict"), [
    (click(1.5), "link_scanners"), (click(9.99), "link_scanners"), (click(10), None),
    (click(None), None), (click(3600, "Mimecast URL protect"), "link_scanners"),
    (click(3600), None)])
def test_a_click_soon_after_its_email_or_from_a_scanner_is_a_scanners(
        event: Event, verdict: str | None) -> None:
    assert event_filter(event, Filters()) == verdict


def test_link_scanners_only_judge_clicks_and_can_be_switched_off() -> None:
    opened = Event("ann", 0, "track", "Email Opened", properties={"seconds_since_sent": 1})
    assert event_filter(opened, Filters()) is None
    assert event_filter(click(1), Filters(link_scanners=False)) is None
    assert event_filter(click(1), Filters(link_scanner_seconds=0)) is None


def test_our_own_people_by_email_domain_and_subdomain_or_lead_id() -> None:
    assert lead_filter(Lead("bob", {"email": "Bob@SHOP.example"}), OFFICE) == \
        "internal_domains"
    assert lead_filter(Lead("bob", {"email": "bob@eu.shop.example"}), OFFICE) == \
        "internal_domains"
    assert lead_filter(Lead("bob", {"email": "bob@notshop.example"}), OFFICE) is None
    assert lead_filter(Lead("bob", {"email": 42}), OFFICE) is None
    assert lead_filter(Lead("qa-bot"), OFFICE) == "lead_ids"
    assert lead_filter(None, OFFICE) is None


def test_filters_on_the_event_come_before_filters_on_the_lead() -> None:
    staff = Lead("bob", {"email": "bob@shop.example"})
    assert which_filter(page(ip="10.0.0.9"), staff, OFFICE) == "ips"
    assert which_filter(page(ip="192.0.2.1"), staff, OFFICE) == "internal_domains"
    assert which_filter(page(ip="192.0.2.1"), Lead("ann"), OFFICE) is None


@pytest.mark.parametrize(("given", "problem"), [
    ({"ips": ["10.0.0.0/33"]}, "not an address range"),
    ({"user_agents": ["("]}, "not a regular expression"),
    ({"link_scanner_seconds": -1}, "greater than or equal to 0"),
    ({"link_scanner_seconds": float("inf")}, "finite"),
    ({"bot": True}, "Extra inputs")])
def test_a_wrong_filter_is_refused_by_name(given: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Filters.model_validate(given)
