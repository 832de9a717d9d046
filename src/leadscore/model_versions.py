"""Model versions: every model text put becomes a version in the store, one version of each
name is active, and the active models are parsed once per version — read again where another
process (a worker sharing PostgreSQL) changed a version.

`Service` puts and restores models here; its rescoring follows a change (`rescoring`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import yaml
from sqlalchemy import Connection

from leadscore.errors import ModelError, Problem
from leadscore.ingest.session import ActiveModel
from leadscore.model.loader import load_model
from leadscore.model.schema import Model
from leadscore.store import models as model_store
from leadscore.store.database import Database
from leadscore.timeutil import now_us


class ModelVersions:
    """The store's model versions and the active models, loaded. Thread-safe."""

    def __init__(self, db: Database):
        self.db = db
        self._lock = threading.Lock()
        self._loaded: dict[str, ActiveModel] = {}

    def active(self, connection: Connection) -> list[ActiveModel]:
        """The active models by name, as of this transaction (re-read when another process
        changed a version)."""
        versions = model_store.active_versions(connection)
        with self._lock:
            if {n: m.version for n, m in self._loaded.items()} != versions:
                texts = model_store.active(connection)
                loaded = {}
                for name, (version, text) in texts.items():
                    known = self._loaded.get(name)
                    loaded[name] = known if known is not None and known.version == version \
                        else ActiveModel(name, version,
                                         load_model(f"{name}@v{version}.yaml", text=text))
                self._loaded = loaded
            return [self._loaded[n] for n in sorted(self._loaded)]

    def put(self, name: str, text: str) -> tuple[int, bool]:
        """Validate a model's YAML and `install` it as `name`; ModelError (nothing changes)
        if it does not validate or names another model."""
        model = load_model(f"{name}.yaml", text=text)
        if model.name != name:
            raise ModelError([Problem(f"{name}.yaml", _name_line(text), "name",
                                      "the model's name differs from the name it is uploaded "
                                      "as", model.name, repr(name))])
        return self.install(name, text)

    def install(self, name: str, text: str) -> tuple[int, bool]:
        """Make `text` the active version of `name` unless the active one is the same model
        (the same text, or the same rules written differently): (version, whether it
        changed)."""
        wanted = load_model(f"{name}.yaml", text=text).model_dump()

        def work(connection: Connection) -> tuple[int, bool]:
            current = model_store.active(connection).get(name)
            if current is not None and (current[1] == text or load_model(
                    f"{name}.yaml", text=current[1]).model_dump() == wanted):
                return current[0], False
            return model_store.add(connection, name, text, now_us()), True

        return self.db.write(work)

    def restore(self, name: str, version: int) -> None:
        """Make an older version active again."""
        def work(connection: Connection) -> None:
            model_store.activate(connection, name, version)

        self.db.write(work)


def _name_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("name:"):
            return number
    return None


def model_text(model: Model) -> str:
    """A model's YAML: its file's text where it came from one, else the model dumped."""
    if model.source and Path(model.source).is_file():
        text = Path(model.source).read_text(encoding="utf-8")
        if load_model(model.source, text=text) == model:
            return text
    return yaml.safe_dump(model.model_dump(mode="json", exclude_none=True), sort_keys=False,
                          allow_unicode=True)
