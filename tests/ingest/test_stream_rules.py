"""The service applies the stream rules (docs/model-format.md, "Events and leads as the
engines see them"): alias links both kinds of id, the surviving lead of a merge is the known
one with the smaller id, traits are per key the latest non-null value by (timestamp,
messageId) — also after a merge and for an identify sent late — and an account link is the
latest account-naming message. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from leadscore import load_model
from leadscore.service import Service
from tests.test_service import MODEL, NOW, at, expected, page, same, track


@pytest.fixture
def service(db_url: str) -> Iterator[Service]:
    with Service.open(db_url, models=[load_model("web.yaml", text=MODEL)],
                      background=False) as opened:
        yield opened


def identify(user: str | None, days_ago: float, message_id: str, *,
             anonymous: str | None = None, **traits: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "identify", "traits": traits, "timestamp": at(days_ago),
                               "messageId": message_id}
    if user is not None:
        message["userId"] = user
    if anonymous is not None:
        message["anonymousId"] = anonymous
    return message


def alias(user: str, previous: str, days_ago: float = 0) -> dict[str, Any]:
    return {"type": "alias", "userId": user, "previousId": previous,
            "timestamp": at(days_ago), "messageId": f"alias-{user}-{previous}"}


def group(user: str, account: str, days_ago: float, message_id: str, **traits: Any
          ) -> dict[str, Any]:
    return {"type": "group", "userId": user, "groupId": account, "traits": traits,
            "timestamp": at(days_ago), "messageId": message_id}


def lead_ids(service: Service) -> set[str]:
    return {row["lead_id"] for row in service.list_leads(limit=100)[0]}


def test_alias_merges_the_user_and_the_anonymous_lead_of_previous_id(service: Service) -> None:
    as_user = [track("p1", "Demo Requested", 3)]
    as_anonymous = [page(None, "/pricing", 2, anonymous="p1")]
    ann = [track("ann", "Email Opened", 1, email_id="e1")]
    service.ingest([*as_user, *as_anonymous, *ann], received_at=NOW)
    assert len(lead_ids(service)) == 3
    service.ingest([alias("ann", "p1")], received_at=NOW)
    assert lead_ids(service) == {"ann"}
    same(service.get_lead("ann", as_of=NOW), expected([*as_user, *as_anonymous, *ann],
                                                      "ann", {}))


def test_the_known_lead_with_the_smaller_id_survives_a_merge(service: Service) -> None:
    service.ingest([track("zed", "Demo Requested", 2), track("amy", "Email Opened", 1,
                                                             email_id="e")], received_at=NOW)
    service.ingest([alias("zed", "amy")], received_at=NOW)
    assert lead_ids(service) == {"amy"}
    assert service.get_lead("zed", as_of=NOW)["lead_id"] == "amy"
    # An alias's previousId links; it names the lead only once a message is sent with it
    # as its userId.
    service.ingest([alias("amy", "abe")], received_at=NOW)
    assert lead_ids(service) == {"amy"}
    service.ingest([track("abe", "Email Opened", 0.5, email_id="f")], received_at=NOW)
    assert lead_ids(service) == {"abe"}
    lead = service.get_lead("zed", as_of=NOW)
    assert lead["lead_id"] == "abe"
    same(lead, expected([track("zed", "Demo Requested", 2),
                         track("amy", "Email Opened", 1, email_id="e"),
                         track("abe", "Email Opened", 0.5, email_id="f")], "abe", {}))


def test_an_aliased_anonymous_id_does_not_name_the_lead(service: Service) -> None:
    service.ingest([page(None, "/pricing", 3, anonymous="a1"),
                    identify("u1", 2, "i1", anonymous="a1", email="u1@example.org"),
                    track("u2", "Demo Requested", 1)], received_at=NOW)
    assert lead_ids(service) == {"u1", "u2"}
    service.ingest([alias("u2", "a1")], received_at=NOW)    # a1 is u1's: u1 and u2 merge
    assert lead_ids(service) == {"u1"}
    for name in ("a1", "u1", "u2"):
        assert service.get_lead(name, as_of=NOW)["lead_id"] == "u1"
    lead = service.get_lead("u1", as_of=NOW)
    assert lead["traits"] == {"email": "u1@example.org"}
    same(lead, expected([page(None, "/pricing", 3), track("u2", "Demo Requested", 1)], "u1",
                        {"email": "u1@example.org"}))


def test_a_null_trait_does_not_erase_and_a_late_identify_does_not_win(
        service: Service) -> None:
    service.ingest([identify("ann", 3, "i1", email="ann@example.org", plan="free")],
                   received_at=NOW)
    service.ingest([identify("ann", 2, "i2", email=None, plan="pro")], received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["traits"] == {
        "email": "ann@example.org", "plan": "pro"}
    # Sent late: older than the lead's latest identify; only its new key counts.
    service.ingest([identify("ann", 5, "i0", plan="trial", occupation="student")],
                   received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["traits"] == {
        "email": "ann@example.org", "plan": "pro", "occupation": "student"}
    # Same time: the larger messageId is the later.
    service.ingest([identify("ann", 2, "i3", plan="team"), identify("ann", 2, "i1b",
                                                                    plan="free")],
                   received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["traits"]["plan"] == "team"


def test_after_a_merge_traits_are_the_latest_not_the_survivors(service: Service) -> None:
    service.ingest([identify("ann", 3, "i1", plan="free", email="ann@example.org"),
                    identify("bob", 1, "i2", plan="pro", email=None)], received_at=NOW)
    service.ingest([alias("bob", "ann")], received_at=NOW)
    lead = service.get_lead("bob", as_of=NOW)
    assert lead["lead_id"] == "ann"
    assert lead["traits"] == {"plan": "pro", "email": "ann@example.org"}


def test_the_account_is_the_latest_account_naming_message(service: Service) -> None:
    service.ingest([group("ann", "acme", 1, "g2", employees=500, plan="pro")],
                   received_at=NOW)
    service.ingest([group("ann", "old-co", 3, "g1", employees=20),        # sent late
                    group("bob", "acme", 0.5, "g3", employees=None, plan="team")],
                   received_at=NOW)
    ann = service.get_lead("ann", as_of=NOW)
    assert ann["account_id"] == "acme"
    assert ann["account"] == {"employees": 500, "plan": "team"}     # a null does not erase
    assert "big company" in [r["rule"] for r in ann["reasons"]]
    # An identify naming its company later moves the lead.
    service.ingest([identify("ann", 0.2, "i1", company={"id": "new-co", "employees": 5})],
                   received_at=NOW)
    assert service.get_lead("ann", as_of=NOW)["account_id"] == "new-co"
    # After a merge the link is the latest among all its identities' messages.
    service.ingest([alias("bob", "ann")], received_at=NOW)
    assert service.get_lead("bob", as_of=NOW)["account_id"] == "new-co"
