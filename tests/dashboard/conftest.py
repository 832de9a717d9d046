"""A small demo store (the first 160 leads of the demo world, moved to today), built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore.demo.serve import DemoStore, build_store

LEADS = 160


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    return build_store(tmp_path_factory.mktemp("demo") / "world", leads=LEADS)


def signed_in_client(store: DemoStore):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from leadscore.api.app import create_app

    client = TestClient(create_app(store.settings))
    client.__enter__()
    response = client.post("/dashboard/login", data={"token": store.admin_token,
                                                     "next": "/dashboard/"},
                           follow_redirects=False)
    assert response.status_code == 303
    return client


@pytest.fixture()
def client(demo_store: DemoStore):  # type: ignore[no-untyped-def]
    client = signed_in_client(demo_store)
    yield client
    client.__exit__(None, None, None)


def pages_dir() -> Path:
    import os

    return Path(os.environ.get("LEADSCORE_SCREENSHOTS", "test-artifacts/screenshots"))
