"""docs/CONNECTING.md lists every permission the connector asks for, with the same reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.permissions import APPLICATION_PERMISSIONS, DELEGATED_SCOPES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "CONNECTING.md").read_text(encoding="utf-8")


def table_after(heading: str) -> dict[str, str]:
    section = DOC.split(heading, 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \|$", section, flags=re.M)
    table: dict[str, str] = {}
    for name, reason in rows:
        if name in table:
            break
        table[name] = reason
        if len(table) and not section.split(f"| `{name}` |", 1)[1].split("\n", 2)[1].startswith("| `"):
            break
    return table


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("Application permissions (admin consent):", APPLICATION_PERMISSIONS),
        ("Delegated scopes (MSAL adds", DELEGATED_SCOPES),
    ],
)
def test_the_permission_table_matches_what_the_code_asks_for(heading, expected):
    assert table_after(heading) == expected


def test_the_redirect_uri_is_documented():
    assert "/api/consent/callback" in DOC and "PUBLIC_BASE_URL" in DOC


def test_every_delegated_operation_is_covered_by_a_requested_scope():
    """A delegated connection asks for DELEGATED_SCOPES: every operation it may call must be
    granted by one of them, or the button fails with 403 after a successful connect."""
    from shared.permissions import OPERATIONS, SCOPE_INCLUDES

    granted = set(DELEGATED_SCOPES) | {
        included for scope in DELEGATED_SCOPES for included in SCOPE_INCLUDES.get(scope, ())
    }
    needed = {delegated for _, delegated, _ in OPERATIONS.values() if delegated}
    assert needed - granted == set()
