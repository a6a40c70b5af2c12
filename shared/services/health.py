"""The deep health check: each dependency the connector needs, tried for real, each answer one
line an operator can act on. Checks run concurrently, each with its own time limit; a failure
names the dependency and what went wrong, never a secret."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.ports import Bot, ConversationStore

CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


Check = Callable[[], Awaitable[str]]  # returns what it saw; raises to say what is wrong


class Unwell(Exception):
    """A check ran and found a problem (the message says which)."""


async def run_checks(checks: dict[str, Check], seconds: float = CHECK_SECONDS) -> list[CheckResult]:
    async def one(name: str, check: Check) -> CheckResult:
        try:
            return CheckResult(name, True, await asyncio.wait_for(check(), seconds))
        except TimeoutError:
            return CheckResult(name, False, f"no answer within {seconds:.0f} s")
        except Unwell as exc:
            return CheckResult(name, False, str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is the answer of this check
            first = (str(exc).splitlines() or [""])[0][:300]
            return CheckResult(name, False, f"{type(exc).__name__}: {first}" if first else type(exc).__name__)

    return list(await asyncio.gather(*(one(name, check) for name, check in checks.items())))


def queue_check(probe: Any) -> Check:
    """Reachable, and nothing dead-lettered (a dead letter is a message that will never be
    processed without someone looking at it)."""

    async def check() -> str:
        depth = await probe.depth()
        seen = f"{depth.active} waiting, {depth.scheduled} scheduled, {depth.dead_letter} dead-lettered"
        if depth.dead_letter:
            raise Unwell(f"{seen}: read them with the operator routes or the portal's Service Bus Explorer")
        return seen

    return check


def tables_check(store: ConversationStore) -> Check:
    async def check() -> str:
        await store.get_conversation("00000000-0000-0000-0000-000000000000", "health-probe")
        return "read"

    return check


def bot_token_check(bot: Bot) -> Check:
    async def check() -> str:
        return await bot.check_token()

    return check


def tenant_check(directory: Any, connection: Any) -> Check:
    """The tenant's Graph credential still works: an app-only token issued in the tenant (bot
    method), or the connected user's token refreshed and used (delegated)."""

    async def check() -> str:
        if connection.method == "delegated":
            me = await directory.me(connection.tenant_id)
            return f"delegated, as {me.get('userPrincipalName') or me.get('displayName') or 'the connected user'}"
        claims = await directory.app_token_claims(connection.tenant_id)
        if claims.get("tid") != connection.tenant_id:
            raise Unwell(
                "no app-only token for this tenant: admin consent may have been revoked; connect the tenant again"
            )
        organisation = await directory.organization(connection.tenant_id)  # the token, used
        return f"app-only token with {len(claims.get('roles') or [])} role(s); {organisation.get('displayName')} read"

    return check
