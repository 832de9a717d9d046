"""Every link of a program e-mail tracked (#19): each `http(s)` link in the HTML body (`<a
href>`) and the text body becomes a signed click link, so a click scores however the template
was written — `{{ link(url, topic) }}` keeps working (its links are tracked already).

A link's `topic` comes from its `data-topic` attribute, else from the picked content item when
it links to that item's URL, else none. `data-track="no"` leaves one link as it is.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Mapping
from typing import Any

_A_TAG = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""")
_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?"

Track = Callable[[str, str | None], str]


def _content_topic(content: Mapping[str, Any] | None, url: str) -> str | None:
    if content and content.get("url") == url and content.get("topics"):
        return str(content["topics"][0])
    return None


def track_html(body: str, track: Track, tracked_prefix: str,
               content: Mapping[str, Any] | None = None) -> str:
    def one(tag: re.Match[str]) -> str:
        text = tag.group(0)
        attributes = {m.group(1).lower(): m for m in _ATTRIBUTE.finditer(text)}
        href = attributes.get("href")
        if href is None:
            return text
        value = href.group(2).strip("\"'")
        url = html_lib.unescape(value)
        track_flag = attributes.get("data-track")
        if (track_flag is not None and track_flag.group(2).strip("\"'").lower() == "no") or \
                not url.lower().startswith(("http://", "https://")) or \
                url.startswith(tracked_prefix):
            return text
        topic_attribute = attributes.get("data-topic")
        topic = html_lib.unescape(topic_attribute.group(2).strip("\"'")) \
            if topic_attribute is not None else _content_topic(content, url)
        new = f'href="{html_lib.escape(track(url, topic or None))}"'
        return text[:href.start()] + new + text[href.end():]

    return _A_TAG.sub(one, body)


def track_text(body: str, track: Track, tracked_prefix: str,
               content: Mapping[str, Any] | None = None) -> str:
    def one(found: re.Match[str]) -> str:
        url = found.group(0)
        tail = ""
        while url and url[-1] in _TRAILING:      # "see https://x.example." ends a sentence
            url, tail = url[:-1], url[-1] + tail
        if url.startswith(tracked_prefix):
            return found.group(0)
        return track(url, _content_topic(content, url)) + tail

    return _TEXT_URL.sub(one, body)
