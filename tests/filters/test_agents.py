"""The maintained user-agent lists (filters/bots.txt, scanners.txt): plain text lines, the
well-known crawlers, monitors and tools match, and no person's browser does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leadscore.events import Event
from leadscore.filters import CLICKED, Filters, agents, event_filter

BROWSERS = [line for line in (Path(__file__).parent / "browsers.txt").read_text(
    encoding="utf-8").splitlines() if line and not line.startswith("#")]
CRAWLERS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/126.0.0.0 Safari/537.36",
    "python-requests/2.32.3", "curl/8.5.0", "Wget/1.21.4", "Go-http-client/2.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
]


@pytest.mark.parametrize("name", ["bots.txt", "scanners.txt"])
def test_lines_are_plain_text_and_no_browser_matches(name: str) -> None:
    lines = agents.read_list(name)
    assert len(lines) > 10 and len(set(lines)) == len(lines)
    for line in lines:       # no regular expression: `^` / `$` anchor, the rest is text
        assert not re.search(r"[\\\[\]()*+?|{}]", line), line
    found = agents.TextList.of(lines)
    assert [b for b in BROWSERS if found.finds(b)] == []


def test_anchored_lines() -> None:
    found = agents.TextList.of(("^curl/", "-client$", "^ruby$", "bingbot"))
    assert found.finds("curl/8.5") and not found.finds("not curl/8.5")
    assert found.finds("Some-Client") and not found.finds("some-client 2")
    assert found.finds("Ruby") and not found.finds("ruby 3")
    assert found.finds("Mozilla/5.0 (compatible; BingBot/2.0)")


@pytest.mark.parametrize("agent", CRAWLERS)
def test_the_well_known_crawlers_monitors_and_tools_are_bots(agent: str) -> None:
    page = Event("a", 0, "page", path="/", context={"userAgent": agent})
    assert event_filter(page, Filters()) == "bots"
    assert event_filter(page, Filters(bots=False)) is None


@pytest.mark.parametrize("agent", BROWSERS)
def test_a_persons_browser_is_no_bot_and_no_scanner(agent: str) -> None:
    click = Event("a", 0, "track", CLICKED, properties={"seconds_since_sent": 3600},
                  context={"userAgent": agent})
    assert event_filter(click, Filters()) is None
