"""The `account:` section made ready to run, and how a lead finds its account.

A lead belongs to at most one account, found in this order (the match kind is recorded):
`group` (a Segment group call, or an explicit link), `account_id` (the lead's `account_id`
trait: a leads-table column), `domain` (the domain of the lead's `email` trait equals an
account's `domain` trait; free-mail domains never match).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from leadscore.model import conditions as cond
from leadscore.model.compiled import FitRule
from leadscore.model.schema import AccountModel, Model

MATCH_KINDS = ("group", "account_id", "domain")

# Mailbox providers: an address there says nothing about the company (never matched).
FREE_MAIL_DOMAINS: frozenset[str] = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr",
    "ymail.com", "hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr", "outlook.com",
    "outlook.de", "live.com", "live.de", "msn.com", "aol.com", "icloud.com", "me.com",
    "mac.com", "proton.me", "protonmail.com", "pm.me", "gmx.de", "gmx.net", "gmx.com",
    "web.de", "t-online.de", "freenet.de", "mail.com", "mail.ru", "yandex.ru", "yandex.com",
    "zoho.com", "fastmail.com", "hey.com", "tutanota.com", "qq.com", "163.com", "126.com",
    "orange.fr", "free.fr", "laposte.net", "libero.it", "virgilio.it", "seznam.cz",
    "wp.pl", "o2.pl", "interia.pl", "rediffmail.com", "naver.com", "daum.net",
})

ROLLUPS = ("sum", "max", "top3_mean")


def email_domain(value: Any) -> str | None:
    """The lower-cased part after the last `@` of an e-mail address; None without one."""
    if not isinstance(value, str) or "@" not in value:
        return None
    domain = value.rsplit("@", 1)[1].strip().lower()
    return domain or None


def account_domain(value: Any) -> str | None:
    """An account's `domain` trait, lower-cased; None where it is not a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip().lower()


def domain_index(accounts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Domain → account id (the smallest id where several accounts share a domain);
    free-mail domains are left out."""
    index: dict[str, str] = {}
    for account_id in sorted(accounts):
        domain = account_domain(accounts[account_id].get("domain"))
        if domain is not None and domain not in FREE_MAIL_DOMAINS:
            index.setdefault(domain, account_id)
    return index


def account_of(traits: Mapping[str, Any], group: str | None,
               domains: Mapping[str, str]) -> tuple[str, str] | None:
    """(account id, match kind) of a lead, or None."""
    if group is not None:
        return group, "group"
    explicit = traits.get("account_id")
    if explicit is not None and explicit != "":
        return str(explicit), "account_id"
    domain = email_domain(traits.get("email"))
    if domain is not None and domain not in FREE_MAIL_DOMAINS and domain in domains:
        return domains[domain], "domain"
    return None


def rollup(kind: str, engagements: Iterable[float]) -> float:
    """The account's engagement from its (not disqualified) leads' engagement."""
    values = sorted(engagements, reverse=True)
    if not values:
        return 0.0
    if kind == "max":
        return values[0]
    if kind == "top3_mean":
        top = values[:3]
        return sum(top) / len(top)
    return sum(values)


@dataclass(frozen=True)
class CompiledAccount:
    spec: AccountModel
    fit: tuple[FitRule, ...]                      # conditions on `account.<trait>`
    roles: tuple[tuple[str, cond.Condition], ...]  # wanted role → condition on the lead

    @property
    def rollup(self) -> str:
        return self.spec.engagement.rollup

    @property
    def mqa(self) -> float | None:
        return self.spec.thresholds.mqa


def _account_fit_rule(index: int, rule: Any) -> FitRule:
    bands: tuple[tuple[cond.Condition, float], ...] = ()
    if rule.bands is not None:
        bands = tuple((cond.parse({rule.attribute: band.condition}, scope="lead",
                                  bare="account"), band.points) for band in rule.bands)
    when = cond.parse(rule.when, scope="lead", bare="account") if rule.when else None
    return FitRule(index, rule.name, when, rule.points, bands, rule.disqualify)


_COMPILED: dict[int, tuple[Model, CompiledAccount | None]] = {}


def compile_account(model: Model) -> CompiledAccount | None:
    """The model's `account:` section ready to run, or None (cached per model object)."""
    found = _COMPILED.get(id(model))
    if found is None or found[0] is not model:
        spec = model.account
        compiled = None
        if spec is not None:
            roles = tuple((role, cond.parse({spec.roles.attribute: {"eq": role}}, scope="lead",
                                            bare="traits"))
                          for role in spec.roles.want) if spec.roles else ()
            compiled = CompiledAccount(
                spec, tuple(_account_fit_rule(i, r) for i, r in enumerate(spec.fit)), roles)
        found = _COMPILED[id(model)] = (model, compiled)
    return found[1]


__all__ = ["FREE_MAIL_DOMAINS", "MATCH_KINDS", "CompiledAccount", "account_of",
           "compile_account", "email_domain", "rollup"]
