"""What the accounts pages show: the accounts list (saved scores, paginated) and one account
with its people (scored as of now). Read through the service (no HTML here)."""

from __future__ import annotations

from typing import Any

from leadscore.dashboard.views import display_name
from leadscore.service import Service

PAGE_SIZE = 50


def accounts_page(service: Service, model: str, mqa: bool | None, q: str, number: int
                  ) -> tuple[list[dict[str, Any]], int]:
    rows, total = service.list_accounts(model=model, mqa=mqa, q=q or None,
                                        limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    for row in rows:
        row["name"] = account_name(row["traits"], row["account_id"])
    return rows, total


def account_view(service: Service, account_id: str, model: str | None) -> dict[str, Any]:
    """`Service.get_account` with display names (raises NotFound)."""
    found = service.get_account(account_id, model=model)
    found["name"] = account_name(found["traits"], account_id)
    for person in found["people"]:
        person["display"] = display_name(person["traits"], person["lead_id"])
        person["role"] = person["traits"].get(found["role_attribute"]) \
            if found["role_attribute"] else None
    return found


def account_name(traits: dict[str, Any], account_id: str) -> str:
    return str(traits.get("name") or traits.get("domain") or account_id)
