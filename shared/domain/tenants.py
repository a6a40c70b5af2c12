"""Microsoft tenant ids: what the connector accepts as one. Pure Python.

A tenant id becomes a Table Storage partition key and part of URLs, so it is checked where it
enters (events, commands, routes, the consent callback, settings) rather than trusted: Entra ID
tenant ids are GUIDs (Microsoft identity platform: the ``tid`` claim), kept in lower case so one
tenant never has two spellings.
"""

from __future__ import annotations

import re

# A GUID. The last group may have one digit more: Microsoft 365 Agents Playground, Microsoft's
# local Teams client, makes up the tenant 00000000-0000-0000-0000-0000000000001. Either shape
# is short, hexadecimal and safe as a key, which is what the check protects.
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12,13}")


class InvalidTenantId(ValueError):
    """Not a Microsoft tenant id; the message says what was wrong, without echoing long input."""


def tenant_id(value: object) -> str:
    """The tenant id in ``value``, lower case; raises :class:`InvalidTenantId`."""
    if not isinstance(value, str):
        raise InvalidTenantId("must be a Microsoft tenant id (a GUID) as a string")
    if not _GUID.fullmatch(value.strip()):
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise InvalidTenantId(
            f"must be a Microsoft tenant id, a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47, not {shown!r}"
        )
    return value.strip().lower()


def is_tenant_id(value: object) -> bool:
    try:
        tenant_id(value)
    except InvalidTenantId:
        return False
    return True
