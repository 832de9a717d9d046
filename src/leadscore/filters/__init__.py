"""Filters (#19): events kept out of scoring — crawlers and monitors, internal traffic, link
scanners. A filtered event is stored (the service's log keeps the name of the filter that
caught it), never scored, and counted per filter. The service and the batch engines ask the
same function, `which_filter`, so they agree.

>>> from leadscore.events import Event, Lead
>>> office = Filters(ips=["10.0.0.0/8"], internal_domains=["shop.example"])
>>> page = Event("ann", 0, "page", path="/", context={"userAgent": "curl/8.5.0"})
>>> which_filter(page, Lead("ann"), office)
'bots'
>>> from_office = Event("bob", 0, "page", path="/", context={"ip": "10.1.2.3"})
>>> which_filter(from_office, Lead("bob"), office)
'ips'
>>> which_filter(Event("bob", 0, "page", path="/"), Lead("bob", {"email": "bob@shop.example"}),
...              office)
'internal_domains'
"""

from __future__ import annotations

from leadscore.filters.definition import (
    CLICKED,
    EVENT_FILTERS,
    FILTERS,
    LEAD_FILTERS,
    SINCE_SENT,
    Filters,
    ModelFilters,
    agent_filter,
    combined,
    event_filter,
    ip_filter,
    lead_filter,
    scanner_click,
    too_soon,
    which_filter,
)

__all__ = [
    "CLICKED",
    "EVENT_FILTERS",
    "FILTERS",
    "LEAD_FILTERS",
    "SINCE_SENT",
    "Filters",
    "ModelFilters",
    "agent_filter",
    "combined",
    "event_filter",
    "ip_filter",
    "lead_filter",
    "scanner_click",
    "too_soon",
    "which_filter",
]
