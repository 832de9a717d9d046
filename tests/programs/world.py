"""A small program world on disk: a model, a welcome program, templates and content."""

from __future__ import annotations

from pathlib import Path

MODEL = """
name: shop
engagement:
  rules:
    - {name: signup, event: Newsletter Subscribed, points: 5, limit: once}
    - {name: clicked, event: Email Link Clicked, where: {properties.topic: {exists: true}},
       points: 7}
    - {name: opened, event: Email Opened, points: 1, distinct: properties.email_id}
    - {name: unsubscribed, event: Unsubscribed, points: -20}
temperature: {hot: 50, warm: 10}
thresholds: {mql: 100}
lifecycle:
  - {stage: subscriber, on: {event: Newsletter Subscribed}}
"""
WELCOME = """
name: welcome
model: shop
enter: {on: {event: Newsletter Subscribed}}
exit: [mql, unsubscribed]
steps:
  - id: hello
    send_email: {template: hello, content: by_interest}
  - wait: {days: 1}
  - id: reminder
    send_email: {template: reminder}
"""
HELLO = """Subject: Welcome, {{ traits.first_name }}!
Hello {{ traits.first_name }},

{% if content %}Start here: {{ link(content.url, content.topics[0]) }}{% endif %}
"""
REMINDER = "Subject: Still there?\nHi {{ traits.first_name }}, have a look.\n"
CONTENT = """
- {id: oil-guide, title: Oil painting, url: "https://shop.example/oil", topics: [painting]}
- {id: paper-guide, title: Paper, url: "https://shop.example/paper", topics: [paper]}
"""


def write_world(root: Path, welcome: str = WELCOME) -> Path:
    for folder in ("models", "programs", "templates"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "models" / "shop.yaml").write_text(MODEL)
    (root / "programs" / "welcome.yaml").write_text(welcome)
    (root / "templates" / "hello.txt").write_text(HELLO)
    (root / "templates" / "reminder.txt").write_text(REMINDER)
    (root / "content.yaml").write_text(CONTENT)
    return root
