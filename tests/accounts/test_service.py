"""Accounts scored live by the service, on SQLite and PostgreSQL: links (group, account_id
trait, e-mail domain), scores saved in the transaction of each change, account handoffs once
per MQA crossing, rescoring after a model upload, and a store from before accounts."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from leadscore.service import NotFound, Service
from leadscore.store.accounts import ACCOUNT_TABLES
from leadscore.store.schema import schema_version
from leadscore.timeutil import US_PER_DAY, iso, now_us
from tests.accounts.conftest import MODELS, NOW, group, identify, page, track


def acme(service: Service) -> dict:
    rows, _ = service.list_accounts(q="acme")
    [row] = [r for r in rows if r["account_id"] == "acme"]
    return row


def people(service: Service) -> None:
    """ann joins acme by a group call, bob by his e-mail domain, cy by an account_id trait;
    dee's free-mail address links her nowhere."""
    service.ingest([group("ann", "acme", industry="software", domain="Acme.com"),
                    identify("ann", email="ann@acme.com", job_level="decision maker"),
                    identify("bob", email="bob@ACME.com", job_level="user"),
                    identify("cy", email="cy@gmail.com", account_id="acme"),
                    identify("dee", email="dee@gmail.com")], received_at=NOW)


def test_accounts_are_scored_in_the_transaction_of_each_change(service: Service) -> None:
    people(service)
    rows, total = service.list_accounts()
    assert total == 1
    assert rows[0]["account_id"] == "acme" and rows[0]["score"] == 20      # target industry
    assert rows[0]["leads"] == 3 and rows[0]["engaged_leads"] == 0
    service.ingest([track("ann", "Demo Requested")], received_at=NOW)
    row = acme(service)
    assert row["engagement"] == pytest.approx(30) and row["score"] == pytest.approx(50)
    assert row["roles_engaged"] == ["decision maker"] and row["roles_missing"] == ["user"]
    assert row["mqa"] is False and row["as_of"] == "2026-05-20T12:00:00Z"
    account = service.get_account("acme", as_of=NOW)
    assert (account["leads_by_group"], account["leads_by_domain"],
            account["leads_by_account_id"]) == (1, 1, 1)
    assert account["score"] == pytest.approx(50) and account["rollup"] == "sum"
    found = {p["lead_id"]: p for p in account["people"]}
    assert list(found) == ["ann", "bob", "cy"]             # most engaged first
    assert found["ann"]["match"] == "group" and found["ann"]["score"] == pytest.approx(35)
    assert found["bob"]["match"] == "domain" and found["cy"]["match"] == "account_id"
    assert {r["rule"] for r in account["reasons"]} == {"target industry",
                                                      "sum of the leads' engagement"}
    assert service.get_lead("bob")["account_link"] == {"account_id": "acme", "match": "domain"}
    assert service.get_lead("dee")["account_link"] is None

    # The account's traits change: its fit, in the same transaction.
    service.ingest([group("ann", "acme", industry="retail")], received_at=NOW)
    row = acme(service)
    assert row["disqualified"] is True and row["disqualify_reason"] == "retail"
    assert row["fit"] == 0 and row["mqa"] is False

    # An account given a domain later takes the leads with that e-mail domain; dee's
    # free-mail one never matches.
    service.ingest([identify("eve", email="eve@beta.io"), track("eve", "Demo Requested"),
                    group("zed", "beta", domain="beta.io"),
                    group("yan", "gmail", domain="gmail.com")], received_at=NOW)
    beta = service.get_account("beta", as_of=NOW)
    assert {p["lead_id"]: p["match"] for p in beta["people"]} == {"eve": "domain",
                                                                   "zed": "group"}
    assert beta["engagement"] == pytest.approx(30)
    assert service.get_account("gmail", as_of=NOW)["leads"] == 1         # yan only
    # ... and loses them when its domain changes.
    service.ingest([group("zed", "beta", domain="beta.example")], received_at=NOW)
    assert service.get_lead("eve")["account_link"] is None
    rows, _ = service.list_accounts(q="beta")
    assert rows[0]["engagement"] == 0 and rows[0]["leads"] == 1

    with pytest.raises(NotFound, match="no account"):
        service.get_account("nobody")
    with pytest.raises(NotFound, match="no model 'web'"):
        service.get_account("acme", model="web")


def test_an_account_handoff_is_written_once_per_crossing(service: Service) -> None:
    people(service)
    first = service.ingest([track("ann", "Demo Requested")], received_at=NOW)
    assert first.handoffs == []                                # 20 + 30 < 70
    crossing = service.ingest([track("bob", "Demo Requested"),
                               track("bob", "Vehicle Interest Submitted", model="SUV")],
                              received_at=NOW)
    assert len(crossing.handoffs) == 1                         # 20 + 30 + 35 ≥ 70
    more = service.ingest([page("ann", "/pricing"), page("bob", "/pricing")],
                          received_at=NOW)
    assert more.handoffs == []
    assert acme(service)["mqa"] is True
    items, total = service.handoffs()
    assert total == 1
    [item] = items
    assert item.id == crossing.handoffs[0]
    assert item.kind == "account_handoff" and item.lead_id == "acme" and item.model == "b2b"
    payload = item.payload
    assert payload["type"] == "account_handoff" and payload["account_id"] == "acme"
    assert payload["traits"] == {"industry": "software", "domain": "Acme.com"}
    assert payload["score"] == pytest.approx(85) and payload["mqa"] is True
    assert payload["rollup"] == "sum" and payload["engagement"] == pytest.approx(65)
    assert payload["roles_engaged"] == ["decision maker", "user"]
    assert payload["lead_id"] == "bob"
    assert payload["event"]["event"] == "Vehicle Interest Submitted"
    assert [(p["lead_id"], p["score"]) for p in payload["people"]] == [
        ("bob", pytest.approx(40)), ("ann", pytest.approx(35)), ("cy", pytest.approx(5))]
    assert sum(r["points"] for r in payload["reasons"]) == pytest.approx(payload["score"])

    # Two months later the account has decayed below the threshold (nothing saved it
    # since): crossing it again is a new crossing, with a new handoff.
    later = NOW + 60 * US_PER_DAY
    again = service.ingest([track("ann", "Demo Requested", -60),
                            track("bob", "Demo Requested", -60)], received_at=later)
    assert len(again.handoffs) == 1 and again.handoffs != crossing.handoffs
    service.rescore()                  # from the log: no crossing it has not seen already
    assert service.handoffs()[1] == 2


def test_a_model_upload_rescores_accounts(service: Service) -> None:
    # Rescoring scores as of now: these messages happen now.
    people(service)
    service.ingest([{**track("ann", "Demo Requested"), "timestamp": iso(now_us())}])
    assert acme(service)["mqa"] is False
    text = (MODELS / "b2b.yaml").read_text().replace("mqa: 70", "mqa: 40")
    assert service.put_model("b2b", text, background=False) == 2
    row = acme(service)
    assert row["model_version"] == 2 and row["mqa"] is True
    items, _ = service.handoffs()
    assert [i.kind for i in items] == ["account_handoff"]
    assert items[0].payload["model_version"] == 2 and items[0].payload["lead_id"] is None


def test_a_store_from_before_accounts_migrates(db_url: str) -> None:
    with Service.open(db_url, models_dir=MODELS, background=False) as service:
        people(service)
        service.ingest([{**track(user, "Demo Requested"), "timestamp": iso(now_us())}
                        for user in ("ann", "bob")])
        before = service.list_accounts()
        # As a store of schema version 3 was: without the account tables.
        with service.db.begin() as connection:
            for table in reversed(ACCOUNT_TABLES):
                table.drop(connection)
            connection.execute(delete(schema_version).where(schema_version.c.version >= 4))
    with Service.open(db_url, models_dir=MODELS, background=False) as service:
        after = service.list_accounts()
        assert service.get_lead("cy")["account_link"] == {"account_id": "acme",
                                                          "match": "account_id"}
    assert [r["account_id"] for r in after[0]] == ["acme"]
    assert after[0][0]["score"] == pytest.approx(before[0][0]["score"], abs=1e-3)
    assert after[0][0]["leads"] == 3 and after[0][0]["mqa"] is True


def test_lead_handoffs_and_the_lead_carry_interests(service: Service) -> None:
    result = service.ingest([identify("bob", email="bob@acme.com"),
                             track("bob", "Vehicle Interest Submitted", model="SUV"),
                             track("bob", "Demo Requested"), track("bob", "Demo Requested", 1)],
                            received_at=NOW)
    [handoff] = result.handoffs
    payload = service.handoff(handoff).payload
    assert payload["type"] == "handoff"
    assert payload["interests"] == [{"topic": "SUV", "weight": 5.0}]
    assert payload["interested_in"] == "interested in: SUV 5"
    lead = service.get_lead("bob", as_of=NOW)
    assert lead["interests"] == [{"topic": "SUV", "weight": 5.0}]
    thirty_days = service.get_lead("bob", as_of=NOW + 30 * US_PER_DAY)
    assert thirty_days["interests"] == [{"topic": "SUV", "weight": pytest.approx(2.5)}]


def test_accounts_wait_for_a_model_with_an_account_section(db_url: str) -> None:
    from tests.api.conftest import MODELS as WEB

    with Service.open(db_url, models_dir=WEB, background=False) as service:
        people(service)
        service.ingest([{**track("ann", "Demo Requested"), "timestamp": iso(now_us())}])
        assert service.list_accounts() == ([], 0) and service.account_models() == []
        with pytest.raises(NotFound, match="no active model has an `account:` section"):
            service.get_account("acme")
        # The links were kept all along: a model with an `account:` section scores them.
        service.put_model("b2b", (MODELS / "b2b.yaml").read_text(), background=False)
        row = acme(service)
        assert row["leads"] == 3 and row["engagement"] == pytest.approx(30, abs=0.01)
        assert service.account_models() == ["b2b"]
