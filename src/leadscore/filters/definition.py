"""The `filters:` settings and the one verdict: which filter, if any, keeps an event out of
scoring.

Filters on the lead (`lead_ids`, `internal_domains`: our own staff) catch every event of the
lead; filters on the event (`ips`, `user_agents`, `bots`, `link_scanners`) read only the
event. The first that holds names the verdict, in the order of `FILTERS`."""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadscore.events import Event, Lead
from leadscore.filters import agents

LEAD_FILTERS = ("lead_ids", "internal_domains")
EVENT_FILTERS = ("ips", "user_agents", "bots", "link_scanners")
# The order of the verdict: an event a filter on events catches keeps that name whoever its
# lead is (so a lead's flags can be lifted when it stops being ours, see `store.leads`).
FILTERS = (*EVENT_FILTERS, *LEAD_FILTERS)

CLICKED = "Email Link Clicked"
# A tracked click carries how long after its e-mail was made it came (`programs` links).
SINCE_SENT = "seconds_since_sent"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Filters(BaseModel):
    """What keeps events out of scoring (the `filters` setting; see docs/filters.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bots: bool = Field(default=True, description="the maintained list of crawlers, "
                       "monitors, headless browsers and HTTP tools (filters/bots.txt) on "
                       "context.userAgent")
    user_agents: tuple[str, ...] = Field(default=(), description="more user-agent patterns "
                                         "(regular expressions, case-insensitive)")
    ips: tuple[str, ...] = Field(default=(), description="address ranges in CIDR (offices, "
                                 "VPNs) on context.ip")
    internal_domains: tuple[str, ...] = Field(default=(), description="e-mail domains of our "
                                              "own people (the lead's traits.email; "
                                              "subdomains included)")
    lead_ids: tuple[str, ...] = Field(default=(), description="lead ids whose events never "
                                      "score")
    link_scanners: bool = Field(default=True, description="a tracked click from a mail "
                                "gateway's scanner (filters/scanners.txt) or within "
                                "link_scanner_seconds of its e-mail is no click")
    link_scanner_seconds: float = Field(default=10.0, ge=0, allow_inf_nan=False,
                                        description="clicks this soon after the e-mail was "
                                        "sent are a scanner's (0: none)")

    @field_validator("user_agents")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("ips")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an address range such as 10.0.0.0/8 or "
                                 "2001:db8::/32") from None
        return value

    @field_validator("internal_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower().lstrip("@") for d in value if d.strip())

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ModelFilters(BaseModel):
    """A model's own `filters:` (docs/model-format.md): filters on events that ADD to the
    settings' for that model only — an event either catches is not scored by the model, and
    a model cannot switch a filter of the settings off. Only what it names counts (`bots`
    and `link_scanners` are off unless named). Filters on leads stay in the settings: a
    lead's profile changes, and its history is re-judged by the settings' filters only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bots: bool | None = None
    user_agents: tuple[str, ...] | None = None
    ips: tuple[str, ...] | None = None
    link_scanners: bool | None = None
    link_scanner_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    lead_ids: None = Field(default=None, description="not in a model: see the settings")
    internal_domains: None = Field(default=None, description="not in a model")

    @field_validator("lead_ids", "internal_domains", mode="before")
    @classmethod
    def _lead_filters(cls, value: Any) -> None:
        raise ValueError("filters on leads belong in the settings' [filters], not a model's "
                         "(a lead's history is re-judged when it becomes one of ours)")

    def own(self) -> Filters:
        """The model's own filters as `Filters`, everything it does not name off (naming
        `link_scanner_seconds` alone turns `link_scanners` on)."""
        seconds = self.link_scanner_seconds
        scanners = self.link_scanners if self.link_scanners is not None else seconds is not None
        return Filters(bots=bool(self.bots), user_agents=self.user_agents or (),
                       ips=self.ips or (), link_scanners=scanners,
                       link_scanner_seconds=10.0 if seconds is None else seconds)

    @model_validator(mode="after")
    def _valid(self) -> ModelFilters:
        self.own()          # the patterns and ranges checked as the settings' are
        return self


def combined(settings: Filters, own: Filters) -> Filters:
    """One `Filters` catching what either catches (a model's effective filters in batch):
    lists joined, a filter on where either has it, the longer scanner window."""
    windows = [f.link_scanner_seconds for f in (settings, own) if f.link_scanners]
    return settings.model_copy(update={
        "bots": settings.bots or own.bots,
        "user_agents": settings.user_agents + own.user_agents,
        "ips": settings.ips + own.ips,
        "internal_domains": settings.internal_domains + own.internal_domains,
        "lead_ids": settings.lead_ids + own.lead_ids,
        "link_scanners": bool(windows),
        "link_scanner_seconds": max(windows, default=settings.link_scanner_seconds)})


def lead_filter(lead: Lead | None, filters: Filters) -> str | None:
    """The filter that catches every event of `lead` (our own people), or None."""
    if lead is None:
        return None
    if lead.lead_id in filters.lead_ids:
        return "lead_ids"
    email = lead.traits.get("email")
    if filters.internal_domains and isinstance(email, str) and "@" in email:
        domain = email.rsplit("@", 1)[1].strip().lower()
        if any(domain == d or domain.endswith("." + d) for d in filters.internal_domains):
            return "internal_domains"
    return None


def event_filter(event: Event, filters: Filters) -> str | None:
    """The filter that catches `event` by what it carries, or None: its address
    (`ip_filter`), then its agent (`agent_filter`), then, for a click, a scanner's agent or
    the time since its e-mail (`scanner_click`). Batch asks the same parts once per
    distinct value (`engine.batch.filters`)."""
    agent = event.context.get("userAgent")
    agent = agent if isinstance(agent, str) else None
    ip = event.context.get("ip")
    return ip_filter(ip if isinstance(ip, str) else None, filters) or \
        agent_filter(agent, filters) or (
            "link_scanners" if event.event == CLICKED and scanner_click(
                agent, event.properties.get(SINCE_SENT), filters) else None)


def ip_filter(ip: str | None, filters: Filters) -> str | None:
    """`ips` where the address is in one of the ranges."""
    return "ips" if ip and filters.ips and _in_ranges(ip, filters.ips) else None


def agent_filter(agent: str | None, filters: Filters) -> str | None:
    """`user_agents` or `bots` where the agent is one of theirs."""
    if not agent:
        return None
    if filters.user_agents and agents.matches(agent, filters.user_agents):
        return "user_agents"
    if filters.bots and agents.is_bot(agent):
        return "bots"
    return None


def scanner_click(agent: str | None, seconds: Any, filters: Filters) -> bool:
    """Whether a click is a link scanner's: a scanner's agent, or `seconds` (since its
    e-mail: a number, not a flag) under `link_scanner_seconds`."""
    return filters.link_scanners and (
        bool(agent and agents.is_scanner(agent))
        or too_soon(seconds, filters.link_scanner_seconds))


def which_filter(event: Event, lead: Lead | None, filters: Filters) -> str | None:
    """The name of the first filter that keeps `event` of `lead` out of scoring, or None."""
    return event_filter(event, filters) or lead_filter(lead, filters)


def too_soon(seconds: Any, limit: float) -> bool:
    return isinstance(seconds, int | float) and not isinstance(seconds, bool) and \
        0 <= seconds < limit


@cache
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _in_ranges(ip: str, cidrs: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    return any(address in network for network in _networks(cidrs))
