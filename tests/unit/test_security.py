"""Signed consent state, token-cache encryption with key rotation, tenant admin keys."""

from __future__ import annotations

import pytest

from shared.security import (
    DecryptionError,
    InvalidState,
    StateSigner,
    TokenCipher,
    new_key,
    parse_keys,
    same_secret,
    tenant_admin_key,
)

KEY = new_key()


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class TestState:
    def test_a_signed_state_verifies_with_its_payload(self):
        signer = StateSigner(KEY)
        assert signer.verify(signer.sign({"f": "flow-1", "m": "bot"}))["f"] == "flow-1"

    def test_a_changed_payload_is_refused(self):
        _body, _, mac = StateSigner(KEY).sign({"f": "flow-1"}).partition(".")
        forged = StateSigner(new_key()).sign({"f": "flow-2"}).partition(".")[0]
        with pytest.raises(InvalidState, match="signature"):
            StateSigner(KEY).verify(f"{forged}.{mac}")

    def test_a_state_signed_with_another_key_is_refused(self):
        with pytest.raises(InvalidState, match="signature"):
            StateSigner(KEY).verify(StateSigner(new_key()).sign({"f": "x"}))

    def test_a_state_expires_after_ten_minutes(self):
        clock = Clock()
        signer = StateSigner(KEY, clock=clock)
        state = signer.sign({"f": "x"})
        clock.now += 599
        assert signer.verify(state)["f"] == "x"
        clock.now += 2
        with pytest.raises(InvalidState, match="expired"):
            signer.verify(state)

    @pytest.mark.parametrize("garbage", ["", "no-dot", ".", "abc.", "!!!.???"])
    def test_garbage_is_refused(self, garbage):
        with pytest.raises(InvalidState):
            StateSigner(KEY).verify(garbage)

    def test_a_short_signing_key_is_refused(self):
        with pytest.raises(ValueError, match="32"):
            StateSigner("short")


class TestCipher:
    def test_a_cache_round_trips_and_is_not_in_clear(self):
        cipher = TokenCipher.from_setting(KEY)
        sealed = cipher.encrypt('{"RefreshToken": "rt-secret"}', "row-a")
        assert "rt-secret" not in sealed and cipher.decrypt(sealed, "row-a") == '{"RefreshToken": "rt-secret"}'

    def test_a_ciphertext_moved_to_another_row_does_not_decrypt(self):
        cipher = TokenCipher.from_setting(KEY)
        with pytest.raises(DecryptionError, match="another row"):
            cipher.decrypt(cipher.encrypt("x", "row-a"), "row-b")

    def test_a_flipped_bit_is_detected(self):
        cipher = TokenCipher.from_setting(KEY)
        sealed = cipher.encrypt("secret", "row")
        tampered = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
        with pytest.raises(DecryptionError):
            cipher.decrypt(tampered, "row")

    def test_after_rotation_old_ciphertexts_still_decrypt_and_ask_to_be_rewritten(self):
        old = TokenCipher.from_setting(KEY)
        sealed = old.encrypt("cache", "row")
        rotated = TokenCipher.from_setting(f"{new_key()},{KEY}")
        assert rotated.decrypt(sealed, "row") == "cache" and rotated.needs_rotation(sealed)
        assert not rotated.needs_rotation(rotated.encrypt("cache", "row"))

    def test_a_removed_key_is_named_in_the_error(self):
        sealed = TokenCipher.from_setting(KEY).encrypt("cache", "row")
        with pytest.raises(DecryptionError, match="no longer lists"):
            TokenCipher.from_setting(new_key()).decrypt(sealed, "row")

    @pytest.mark.parametrize("bad", ["", "not base64 !", "c2hvcnQ"])
    def test_a_bad_key_setting_names_the_setting(self, bad):
        with pytest.raises(ValueError, match="TOKEN_ENCRYPTION_KEY"):
            parse_keys(bad)


class TestAdminKeys:
    def test_a_tenant_key_opens_only_its_tenant(self):
        a, b = (
            tenant_admin_key(KEY, "aaaaaaaa-0000-4000-8000-00000000000a"),
            tenant_admin_key(KEY, "bbbbbbbb-0000-4000-8000-00000000000b"),
        )
        assert (
            a != b
            and same_secret(a, tenant_admin_key(KEY, "AAAAAAAA-0000-4000-8000-00000000000A"))
            and not same_secret(a, b)
        )

    def test_a_missing_key_never_matches(self):
        assert not same_secret(None, "x") and not same_secret("", "")


class TestLogRedaction:
    @pytest.mark.parametrize(
        "line, secret",
        [
            ('"code": "code-000001f300686005",', "code-000001f300686005"),
            ("code_verifier=BTyFa6~3qLl1B3y7GqiQ5dKaW.cyeuqzl3PB5", "BTyFa6~3qLl1B3y7GqiQ5dKaW"),
            ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
            ("X-Admin-Key: 0iLlITvaufY2AQ-mo2u2BW8vzxWuhSfB", "0iLlITvaufY2AQ"),
            ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl issued", "eyJhbGciOiJSUzI1NiJ9"),
            ("GET /callback?code=AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMx&session_state=x", "AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMx"),
            ('{"refresh_token": "0.AX0A-refresh-token-value"}', "0.AX0A-refresh-token-value"),
        ],
    )
    def test_a_secret_in_a_log_line_is_redacted(self, line, secret):
        from shared.logsafety import redact

        assert secret not in redact(line) and "***" in redact(line)

    @pytest.mark.parametrize(
        "line", ["HTTP status code: 404", "alertKey=4f5e6d7c8b9a0f1e2d3c", "Graph error code Forbidden"]
    )
    def test_ordinary_text_stays_readable(self, line):
        from shared.logsafety import redact

        assert redact(line) == line
