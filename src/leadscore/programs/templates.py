"""E-mail templates: Jinja2 in a sandbox, one file per template in `templates/`.

`NAME.txt` (required) is the plain-text body; `NAME.html` (optional) the HTML body; the
first line of the text body may be `Subject: …`. A template sees `lead` (id, traits), `score`,
`interests` (ranked topic → weight), `content` (the picked item, or None), and `link(url,
topic)` / `unsubscribe_url` for tracked links.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from leadscore.addresses import header_text


class Templates:
    """A folder of sandboxed templates, compiled once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.env = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
        self.html_env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)
        self._cache: dict[str, Any] = {}

    def check(self, name: str) -> str | None:
        """Why the template cannot be used, or None."""
        text = self.folder / f"{name}.txt"
        if not text.is_file():
            return f"template not found: {text}"
        for path, env in ((text, self.env), (self.folder / f"{name}.html", self.html_env)):
            if path.is_file():
                try:
                    env.from_string(path.read_text(encoding="utf-8"))
                except TemplateError as exc:
                    line = getattr(exc, "lineno", None)
                    return f"template {path.name} does not compile" + (
                        f" (line {line})" if line else "") + f": {exc}"
        return None

    def _get(self, name: str, html: bool) -> Any:
        key = f"{name}.{'html' if html else 'txt'}"
        if key not in self._cache:
            path = self.folder / key
            self._cache[key] = None if not path.is_file() else (
                self.html_env if html else self.env).from_string(
                    path.read_text(encoding="utf-8"))
        return self._cache[key]

    def _text(self, name: str) -> tuple[Any, Any]:
        """(subject template or None, body template) of `NAME.txt`: the `Subject:` line is
        split off the source, not the output, so a trait with a line break in it stays in
        the subject (and is flattened there) instead of ending the header."""
        key = f"{name}.txt#split"
        if key not in self._cache:
            source = (self.folder / f"{name}.txt").read_text(encoding="utf-8")
            first, _, rest = source.partition("\n")
            if first.lower().startswith("subject:"):
                self._cache[key] = (self.env.from_string(first.split(":", 1)[1]),
                                    self.env.from_string(rest.lstrip("\n")))
            else:
                self._cache[key] = (None, self.env.from_string(source))
        return self._cache[key]

    def render(self, name: str, context: Mapping[str, Any]) -> tuple[str, str, str | None]:
        """(subject, text, html) of a template rendered with `context`; the subject is one
        line (`addresses.header_text`)."""
        subject_template, body = self._text(name)
        text = body.render(**context)
        subject = name.replace("-", " ").replace("_", " ").capitalize()
        if subject_template is not None:
            subject = header_text(subject_template.render(**context))
        html_template = self._get(name, True)
        html = html_template.render(**context) if html_template is not None else None
        return subject, text, html
