"""An alert source's settings for one tenant: its ingest key (derived, never stored: HMAC of the
tenant, the source and its key version under ADMIN_API_KEY), the ingest route's address for each
payload format, and the rotation of one source's key alone. For the admin route and the console."""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.domain.inbound import FORMAT_NAMES
from shared.domain.source_api import InvalidSourceApi, SourceApi, parse_source_api
from shared.ports import StateStore
from shared.security import ingest_key

log = logging.getLogger(__name__)

SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
INGEST_KEY_HEADER = "X-Ingest-Key"
# The key goes in a header the source keeps secret; only Azure Monitor's webhook, which cannot
# send one, has it in the URL (a URL is shown and logged by the sources that hold it).
KEY_IN_URL = frozenset({"azure-monitor"})


class InvalidSource(ValueError):
    """The source name breaks the rule; the message says it."""


def check_source_name(source: str) -> None:
    if not SOURCE_NAME.fullmatch(source):
        raise InvalidSource("source must be 1 to 63 lower-case letters, digits or dashes")


async def source_setup(
    store: StateStore,
    admin_api_key: str,
    public_base_url: str,
    tenant_id: str,
    source: str,
    *,
    rotate: bool = False,
    rotated_by: str = "",
) -> dict[str, Any]:
    """The source's key and ready URLs, one per format; with ``rotate``, after a new key version."""
    check_source_name(source)
    if rotate:
        version = await store.rotate_source_key(tenant_id, source)
        log.info(
            "The key of source %s of tenant %s was rotated (version %d) by %s",
            source,
            tenant_id,
            version,
            rotated_by or "-",
        )
    else:
        version = await store.source_key_version(tenant_id, source)
    key = ingest_key(admin_api_key, tenant_id, source, version)
    base = public_base_url or "https://<your function app>"
    return {
        "tenant": tenant_id,
        "source": source,
        "keyVersion": version,
        "header": INGEST_KEY_HEADER,
        "key": key,
        "authorization": f"Bearer {key}",
        "urls": {
            name: f"{base}/api/events/{name}?tenant={tenant_id}&source={source}"
            + (f"&key={key}" if name in KEY_IN_URL else "")
            for name in FORMAT_NAMES
        },
    }


def _api_associated(tenant_id: str, source: str) -> str:
    # The ciphertext authenticates only as this tenant's source: copied to another row it fails.
    return f"source-api/v1/{tenant_id}/{source}"


async def set_source_api(
    store: StateStore,
    cipher: Any,
    tenant_id: str,
    source: str,
    body: Any,
    *,
    allow_local_http: bool = False,
    changed_by: str = "",
) -> dict[str, Any]:
    """Check and store the source's API settings, the whole of them encrypted (TOKEN_ENCRYPTION_KEY);
    what may be shown of them (never the credential)."""
    check_source_name(source)
    api = parse_source_api(body, allow_local_http=allow_local_http)
    if cipher is None:
        raise InvalidSourceApi(
            "TOKEN_ENCRYPTION_KEY", "is not set, so a source's credential cannot be stored encrypted"
        )
    await store.save_source_api(tenant_id, source, cipher.encrypt(api.to_json(), _api_associated(tenant_id, source)))
    log.info(
        "The API of source %s of tenant %s was set (%s at %s, %s) by %s",
        source,
        tenant_id,
        api.kind,
        api.url,
        api.auth,
        changed_by or "-",
    )
    return api.public()


async def clear_source_api(store: StateStore, tenant_id: str, source: str, *, changed_by: str = "") -> None:
    await store.save_source_api(tenant_id, source, None)
    log.info("The API of source %s of tenant %s was removed by %s", source, tenant_id, changed_by or "-")


async def source_api(store: StateStore, cipher: Any, tenant_id: str, source: str) -> SourceApi | None:
    """The source's API settings, decrypted; None when unset (or no key to decrypt them with)."""
    sealed = await store.get_source_api(tenant_id, source)
    if not sealed or cipher is None:
        return None
    return SourceApi.from_json(cipher.decrypt(sealed, _api_associated(tenant_id, source)))
