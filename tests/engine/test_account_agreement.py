"""Account scores agree between the incremental `AccountScorer` and the batch account plan, on
random models (fit on account traits, every roll-up, roles, mqa), random links (`account_id`
column, e-mail domain, free-mail never), leads and events in any order."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.engine.batch.accounts import score_accounts
from leadscore.engine.incremental import Scorer
from leadscore.engine.incremental.accounts import AccountScorer
from leadscore.events import event_from_row, lead_from_row
from leadscore.model.schema import Model
from tests.engine.test_agreement import AS_OF, EVENT_SCHEMA, EXAMPLES, models, same

LEAD_SCHEMA = pa.schema([("lead_id", pa.string()), ("email", pa.string()),
                         ("account_id", pa.string()), ("job_level", pa.string()),
                         ("occupation", pa.string()), ("country", pa.string())])
ACCOUNT_SCHEMA = pa.schema([("account_id", pa.string()), ("domain", pa.string()),
                            ("industry", pa.string()), ("employees", pa.int64())])
DOMAINS = ["acme.com", "ACME.com", "beta.io", "gmail.com", "rival.example"]


@st.composite
def account_models(draw: st.DrawFn) -> Model:
    base = draw(models()).model_dump(exclude={"source"})
    fit = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["when", "bands", "disqualify"]))
        if kind == "bands":
            fit.append({"name": f"a{i}", "attribute": "employees",
                        "bands": [{"range": [1, 50], "points": 5.0}, {"gte": 40, "points": 9.0}]})
        elif kind == "disqualify":
            fit.append({"name": f"a{i}", "when": {"industry": {"eq": "retail"}},
                        "disqualify": "retail"})
        else:
            fit.append({"name": f"a{i}", "points": float(draw(st.integers(-10, 30))),
                        "when": draw(st.sampled_from([{"industry": {"in": ["software"]}},
                                                      {"employees": {"gte": 100}},
                                                      {"domain": {"exists": True}}]))})
    account: dict[str, Any] = {"fit": fit, "engagement": {
        "rollup": draw(st.sampled_from(["sum", "max", "top3_mean"]))}}
    if draw(st.booleans()):
        account["roles"] = {"attribute": "job_level", "want": ["decision maker", "user"]}
    if draw(st.booleans()):
        account["thresholds"] = {"mqa": float(draw(st.integers(0, 80)))}
    return Model.model_validate({**base, "account": account})


@st.composite
def account_worlds(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                             list[dict[str, Any]]]:
    accounts = [{"account_id": f"acc-{i}", "domain": draw(st.sampled_from([None, *DOMAINS])),
                 "industry": draw(st.sampled_from([None, "software", "retail"])),
                 "employees": draw(st.one_of(st.none(), st.integers(1, 500)))}
                for i in range(draw(st.integers(0, 3)))]
    leads = []
    for i in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 5)) == 0:
            continue
        leads.append({
            "lead_id": f"lead-{i}",
            "email": draw(st.sampled_from([None, *(f"p{i}@{d}" for d in DOMAINS)])),
            "account_id": draw(st.sampled_from([None, None, "acc-0", "acc-1", "solo"])),
            "job_level": draw(st.sampled_from([None, "decision maker", "user", "intern"])),
            "occupation": draw(st.sampled_from([None, "student", "engineer"])),
            "country": draw(st.sampled_from([None, "DE", "FR"])),
        })
    events = []
    for _ in range(draw(st.integers(0, 20))):
        at = AS_OF - draw(st.integers(-2 * 24 * 60, 30 * 24 * 60)) * 60_000_000
        page = draw(st.booleans())
        events.append({"lead_id": f"lead-{draw(st.integers(0, 4))}", "timestamp": at,
                       "type": "page" if page else "track",
                       "event": None if page else draw(st.sampled_from(
                           ["Signed Up", "Clicked", "Order Completed"])),
                       "path": draw(st.sampled_from(["/pricing", "/products/x"])) if page
                       else None, "topic": draw(st.sampled_from([None, "paint", "paper"])),
                       "value": None})
    return accounts, leads, events


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(model=account_models(), world=account_worlds(), data=st.data())
def test_account_scores_agree(model: Model, world: Any, data: st.DataObject) -> None:
    accounts, leads, events = world
    order = data.draw(st.permutations(range(len(events))))
    scorer = AccountScorer(Scorer(model))
    for account in accounts:
        scorer.identify_account(account["account_id"],
                                {k: v for k, v in account.items()
                                 if k != "account_id" and v is not None}, as_of=AS_OF)
    for row in leads:
        lead = lead_from_row(row)
        scorer.identify(lead.lead_id, lead.traits, lead.account, as_of=AS_OF)
    for i in order:
        if events[i]["timestamp"] <= AS_OF:
            scorer.update_one(event_from_row(events[i]), as_of=AS_OF)
    expected = {s.account_id: s.row() for s in scorer.scores(as_of=AS_OF)}
    table = score_accounts(model, pa.Table.from_pylist(events, EVENT_SCHEMA),
                           pa.Table.from_pylist(leads, LEAD_SCHEMA),
                           pa.Table.from_pylist(accounts, ACCOUNT_SCHEMA), as_of=AS_OF)
    actual = {row["account_id"]: row for row in table.to_pylist()}
    assert set(actual) == set(expected)
    for account_id, want in expected.items():
        got = actual[account_id]
        for column, value in want.items():
            other = got[column]
            if column == "as_of":
                continue
            if column in ("roles_engaged", "roles_missing"):
                assert other == value, (account_id, column, value, other)
            else:
                assert same(value, other), (account_id, column, value, other)
