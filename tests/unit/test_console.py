"""The console's core: the ID token verified in full, who may manage a tenant, the sealed
session cookie, its pages escaped and under a Content Security Policy, and its Fluent tokens
those of the pinned package."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.console import render
from shared.console.session import (
    SESSION_LIFETIME,
    ConsoleSession,
    open_session,
    open_signin,
    read_cookie,
    seal_session,
    seal_signin,
)
from shared.console.signin import (
    GLOBAL_ADMINISTRATOR,
    TEAMS_ADMINISTRATOR,
    SignInRefused,
    admin_because,
    verify_id_token,
)
from shared.security import TokenCipher, new_key

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
APP = "11111111-2222-4333-8444-555555555555"
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OTHER = "bbbbbbbb-0000-4000-8000-00000000000b"
AUTHORITY = "https://login.microsoftonline.com"
PERSON = "cccccccc-0000-4000-8000-00000000000c"


class Keys:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k1"

    def jwks(self) -> dict:
        numbers = self.private.public_key().public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

        return {"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "n": b64(numbers.n), "e": b64(numbers.e)}]}

    def token(self, **changes) -> str:
        claims = {
            "aud": APP,
            "iss": f"{AUTHORITY}/{TENANT}/v2.0",
            "tid": TENANT,
            "oid": PERSON,
            "name": "Alex",
            "nonce": "n-1",
            "iat": int(NOW.timestamp()),
            "nbf": int(NOW.timestamp()),
            "exp": int((NOW + timedelta(hours=1)).timestamp()),
        }
        claims.update(changes)
        headers = {"kid": changes.pop("_kid", self.kid)} if "_kid" not in claims else {"kid": claims.pop("_kid")}
        return jwt.encode(claims, self.private, algorithm="RS256", headers=headers)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def verify(keys: Keys, token: str, nonce: str = "n-1", now: datetime = NOW) -> dict:
    return verify_id_token(token, keys.jwks(), app_id=APP, authority_host=AUTHORITY, nonce=nonce, now=now)


class TestTheIdToken:
    def test_a_good_token_gives_its_claims(self, keys):
        assert verify(keys, keys.token())["oid"] == PERSON

    def test_a_token_signed_by_another_key_is_refused(self, keys):
        stranger = Keys()
        with pytest.raises(SignInRefused, match="does not verify"):
            verify(keys, stranger.token())

    def test_a_token_signed_by_a_key_the_tenant_does_not_publish_is_refused(self, keys):
        with pytest.raises(SignInRefused, match="does not publish"):
            verify(keys, keys.token(_kid="someone-elses"))

    def test_a_token_for_another_application_is_refused(self, keys):
        with pytest.raises(SignInRefused, match="another application"):
            verify(keys, keys.token(aud="99999999-2222-4333-8444-555555555555"))

    def test_a_token_whose_issuer_is_not_the_persons_tenant_is_refused(self, keys):
        with pytest.raises(SignInRefused, match="not issued by the person's tenant"):
            verify(keys, keys.token(iss=f"{AUTHORITY}/{OTHER}/v2.0"))

    def test_a_token_of_another_sign_in_is_refused(self, keys):
        with pytest.raises(SignInRefused, match="nonce"):
            verify(keys, keys.token(), nonce="n-2")

    def test_an_expired_token_is_refused(self, keys):
        with pytest.raises(SignInRefused, match="expired"):
            verify(keys, keys.token(), now=NOW + timedelta(hours=2))

    def test_an_unsigned_token_is_refused(self, keys):
        unsigned = jwt.encode({"aud": APP, "tid": TENANT, "oid": PERSON}, None, algorithm="none")
        with pytest.raises(SignInRefused, match="not RS256"):
            verify(keys, unsigned)


class TestWhoMayManage:
    def test_a_global_or_teams_administrator_of_the_tenant(self):
        assert admin_because({"oid": PERSON, "wids": [GLOBAL_ADMINISTRATOR]}, ()) == "Global Administrator"
        assert admin_because({"oid": PERSON, "wids": [TEAMS_ADMINISTRATOR]}, ()) == "Teams Administrator"

    def test_a_person_listed_by_object_id(self):
        assert admin_because({"oid": PERSON.upper(), "wids": []}, (PERSON,)) == "listed in CONNECTOR_ADMINS"

    def test_not_a_upn_nor_another_role(self):
        claims = {
            "oid": PERSON,
            "preferred_username": "alex@contoso.com",
            "wids": ["b79fbf4d-3ef9-4689-8143-76b194e85509"],
        }
        assert admin_because(claims, ("alex@contoso.com",)) is None


class TestTheSessionCookie:
    @pytest.fixture
    def cipher(self) -> TokenCipher:
        return TokenCipher.from_setting(new_key())

    def session(self) -> ConsoleSession:
        return ConsoleSession.start(
            tenant_id=TENANT, user_id=PERSON, name="Alex", username="alex@contoso.com", admin_because="x", now=NOW
        )

    def test_opens_until_it_expires(self, cipher):
        session = self.session()
        sealed = seal_session(session, cipher)
        assert open_session(sealed, cipher, NOW + SESSION_LIFETIME - timedelta(seconds=1)) == session
        assert open_session(sealed, cipher, NOW + SESSION_LIFETIME + timedelta(seconds=1)) is None

    def test_a_changed_cookie_or_one_of_another_key_does_not_open(self, cipher):
        sealed = seal_session(self.session(), cipher)
        flipped = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
        assert open_session(flipped, cipher, NOW) is None
        assert open_session(sealed, TokenCipher.from_setting(new_key()), NOW) is None

    def test_a_sign_in_cookie_is_not_a_session(self, cipher):
        assert open_session(seal_signin({"state": "s"}, cipher, NOW), cipher, NOW) is None
        assert open_signin(seal_session(self.session(), cipher), cipher, NOW) is None

    def test_the_csrf_token_is_checked_in_constant_time_and_a_missing_one_fails(self):
        session = self.session()
        assert session.csrf_ok(session.csrf) and not session.csrf_ok(None) and not session.csrf_ok("x")

    def test_cookies_are_read_by_name(self):
        assert read_cookie("a=1; __Host-tac-console=v.w; b=2", "__Host-tac-console") == "v.w"
        assert read_cookie(None, "a") is None


class TestPages:
    def test_alert_source_text_is_escaped_and_the_policy_allows_no_inline_script(self):
        session = ConsoleSession.start(
            tenant_id=TENANT,
            user_id=PERSON,
            name="<img src=x onerror=alert(1)>",
            username="",
            admin_because="Global Administrator",
            now=NOW,
        )
        response = render.page(
            "message.html", authority_host=AUTHORITY, session=session, title="T", message="<script>alert(1)</script>"
        )
        body = response.get_body().decode()
        assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
        assert "<script>alert(1)" not in body
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy

    def test_an_alerts_page_has_its_notes_in_the_timeline_and_who_is_on_it(self):
        from datetime import timedelta

        from shared.console import forms
        from shared.domain.model import AlertState, StatusStep

        session = ConsoleSession.start(
            tenant_id=TENANT, user_id=PERSON, name="Ada", username="", admin_because="Global Administrator", now=NOW
        )
        later = NOW + timedelta(minutes=5)
        state = AlertState(
            TENANT,
            "k",
            "ALRT-1",
            "src",
            "src",
            "Disk full",
            "acknowledged",
            "high",
            created=NOW,
            steps=(StatusStep("acknowledged", later, by="Ada"),),
            notes=({"text": "<b>rolled back</b>", "by": "Bob", "at": (NOW + timedelta(minutes=2)).isoformat()},),
            assignee={"id": "u-bob", "name": "Bob", "by": "Ada", "at": later.isoformat()},
        )
        body = (
            render.page(
                "alert.html",
                authority_host=AUTHORITY,
                session=session,
                title="Alert",
                alert=state,
                timeline=forms.timeline(state),
                when=forms.when,
                cards=[],
                errors={},
                notice="",
                send={"recipients": [], "fallback": [], "comment": ""},
                now=later,
            )
            .get_body()
            .decode()
        )
        created, noted, acknowledged = (body.index(t) for t in (": created", ": note by Bob", ": acknowledged by Ada"))
        assert created < noted < acknowledged  # oldest first, notes among the status changes
        assert "&lt;b&gt;rolled back&lt;/b&gt;" in body and "<b>rolled back" not in body
        assert "Bob (by Ada)" in body

    def test_a_static_file_outside_the_folder_is_not_served(self):
        assert render.static_file("../pages.py").status_code == 404
        assert render.static_file("console.css").status_code == 200


def test_the_fluent_tokens_in_the_css_are_the_pinned_packages():
    from tools import fluent_tokens

    text = fluent_tokens.CSS.read_text(encoding="utf-8")
    assert fluent_tokens.current_block(text) == fluent_tokens.block(fluent_tokens.themes()), (
        "run python -m tools.fluent_tokens"
    )


class TestRejectedEventsByTenant:
    async def test_a_tenant_sees_the_rejections_that_named_it_only(self):
        from shared.adapters.state_store import memory_store
        from shared.domain.model import RejectedEvent

        store = memory_store()
        for n, tenant in enumerate((TENANT, OTHER, None)):
            await store.record_rejected(
                RejectedEvent(f"m{n}", "data.severity: no", "data.severity", f"e{n}", "{}", NOW, tenant_id=tenant)
            )
        assert [r.event_id for r in await store.list_rejected(tenant_id=TENANT)] == ["e0"]
        assert len(await store.list_rejected()) == 3

    async def test_a_message_that_cannot_be_parsed_is_recorded_for_the_tenant_it_names(self):
        import json

        from shared.adapters.state_store import memory_store
        from shared.services.processing import process_message
        from tests.support.fakes import RecordingMessenger, delivering

        store = memory_store()
        body = json.dumps({"specversion": "1.0", "id": "x", "source": "s", "type": "nonsense", "tenantid": TENANT})
        await process_message(body, "m1", delivering(store, RecordingMessenger()))
        [rejected] = await store.list_rejected()
        assert rejected.tenant_id == TENANT and rejected.field == "type"


async def test_a_refusal_from_microsoft_without_a_description_says_which_error_it_was():
    from shared.console.signin import SignIn

    signin = SignIn(None, app_id=APP, authority_host=AUTHORITY, redirect_uri="https://x/cb", clock=lambda: NOW)
    with pytest.raises(SignInRefused, match=r"Microsoft did not sign you in \(access_denied\)"):
        await signin.complete({"state": "s", "nonce": "n"}, {"error": "access_denied", "state": "s"})
