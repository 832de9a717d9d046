"""routing.yaml: every problem is a ModelError naming the line and key (never a crash), and
rules match on traits, account traits, model and segment, first match winning."""

from __future__ import annotations

from datetime import time

import pytest

from leadscore.errors import ModelError
from leadscore.sales.routing import Hours, parse_routing

BAD = {
    "rules: [{team: [1]}]": "rules[0].team",
    "rules: [{owner: {a: 1}}]": "rules[0].owner",
    "rules: [{owner: a, team: b}]": "rules[0]",
    "rules: [{when: {x: {bogus: 1}}, owner: a}]": "rules[0].when.x.bogus",
    "rules: [{when: 5, owner: a}]": "rules[0].when",
    "rules: [{owner: a, accept_within_hours: -1}]": "rules[0].accept_within_hours",
    "rules: [{owner: a, accept_within_hours: 2}]": "rules[0].manager",
    "rules: [{owner: a, colour: red}]": "rules[0].colour",
    "teams: [1]": "teams",
    "teams: {a: {members: []}}": "teams.a.members",
    "teams: {a: {members: [x], capacity_per_day: 0}}": "teams.a.capacity_per_day",
    "teams: {a: {members: [x], hours: 5}}": "teams.a.hours",
    'teams: {a: {members: [x], hours: "25:00-26:00"}}': "teams.a.hours",
    'teams: {a: {members: [x], hours: "08:00-18:00 Mars/Base"}}': "teams.a.hours",
    "feedback: {reasons: 5}": "feedback.reasons",
    "feedback: {recycle: [1]}": "feedback.recycle",
    "feedback: {rejected_cooldown_days: -2}": "feedback.rejected_cooldown_days",
    "- 1": "(file)",
    "rules: [{owner: a}": "(file)",
}


@pytest.mark.parametrize(("text", "key"), list(BAD.items()))
def test_a_bad_routing_file_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_routing(text)
    assert key in [p.key for p in caught.value.problems]


def test_rules_match_first_on_traits_account_model_and_segment() -> None:
    routing = parse_routing("""\
teams:
  t: {members: [a]}
rules:
  - {when: {account.tier: enterprise}, owner: kim}
  - {model: b2b, when: {country: {in: [DE, AT]}}, owner: dora}
  - {segment: vip, owner: vic}
  - {team: t}
""")
    def owner(traits: dict[str, object], model: str = "m",
              segments: frozenset[str] = frozenset()) -> str | None:
        rule = routing.match({"traits": traits, "account": traits.get("account") or {}},
                             model, segments)
        return None if rule is None else rule.owner or rule.team

    assert owner({"country": "DE", "account": {"tier": "enterprise"}}, "b2b") == "kim"
    assert owner({"country": "DE"}, "b2b") == "dora"
    assert owner({"country": "DE"}, "b2c") == "t"             # another model
    assert owner({}, segments=frozenset({"vip"})) == "vic"
    assert owner({}) == "t"


def test_working_hours_include_the_start_and_wrap_midnight() -> None:
    day, night = Hours(time(8), time(18), "UTC"), Hours(time(22), time(6), "UTC")
    assert day.open_at(time(8)) and not day.open_at(time(18)) and not day.open_at(time(3))
    assert night.open_at(time(23)) and night.open_at(time(5, 59)) and not night.open_at(
        time(12))
