"""The Teams app package builds with one command and matches Microsoft's manifest schema."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import pytest

from tools import build_app_package as build

ROOT = Path(__file__).resolve().parents[2]
BOT_APP_ID = "0b6f8a1e-3c2d-4e5f-8a9b-1c2d3e4f5a6b"
HOST = "func-tac-example.azurewebsites.net"

pytestmark = pytest.mark.skipif(
    not build.SCHEMAS.exists(), reason=f"Teams manifest schemas not installed at {build.SCHEMAS}: run `npm ci`"
)


def png_header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the IHDR chunk, which PNG puts first."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour_type


def pixels(data: bytes) -> list[bytes]:
    """RGBA rows of the icons written by tools/make_icons.py (8-bit RGBA, filter 0)."""
    import zlib

    width, height, _, _ = png_header(data)
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 4 + 1
    assert all(raw[i * stride] == 0 for i in range(height))
    return [raw[i * stride + 1 : (i + 1) * stride] for i in range(height)]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("package") / "appPackage.zip"
    assert build.main(["--bot-app-id", BOT_APP_ID, "--app-host", HOST, "--out", str(out)]) == 0
    return zipfile.ZipFile(io.BytesIO(out.read_bytes()))


@pytest.fixture(scope="module")
def manifest(package) -> dict:
    return json.loads(package.read("manifest.json"))


class TestBuiltPackage:
    def test_holds_the_manifest_and_both_icons_at_the_root(self, package):
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]

    def test_manifest_validates_against_the_pinned_schema(self, manifest):
        assert build.validation_errors(manifest) == []

    def test_manifest_uses_the_newest_schema_in_the_pinned_package(self, manifest):
        newest = build.newest_schema_version()
        assert manifest["manifestVersion"] == newest
        assert (
            manifest["$schema"]
            == f"https://developer.microsoft.com/en-us/json-schemas/teams/v{newest}/MicrosoftTeams.schema.json"
        )

    def test_ids_are_filled_in(self, manifest):
        assert "${{" not in json.dumps(manifest)
        assert manifest["bots"][0]["botId"] == BOT_APP_ID
        assert manifest["validDomains"] == [HOST]

    def test_no_web_application_info_unless_an_app_registration_is_named(self, manifest):
        """The bot id (with azd, the managed identity) exposes no api:// URI: naming it there
        would be wrong, and nothing in the connector needs it."""
        assert "webApplicationInfo" not in manifest
        named = build.build_manifest(
            bot_app_id=BOT_APP_ID,
            app_host=HOST,
            aad_app_id="99999999-8888-7777-6666-555555555555",
            aad_resource=f"api://{HOST}/99999999-8888-7777-6666-555555555555",
        )
        assert named["webApplicationInfo"] == {
            "id": "99999999-8888-7777-6666-555555555555",
            "resource": f"api://{HOST}/99999999-8888-7777-6666-555555555555",
        }
        assert build.validation_errors(named) == []
        with pytest.raises(build.PackageError, match="--aad-resource needs --aad-app-id"):
            build.build_manifest(bot_app_id=BOT_APP_ID, app_host=HOST, aad_resource="api://x/y")

    def test_the_teams_app_id_is_stable_for_a_bot(self, manifest, tmp_path):
        again = build.build_manifest(bot_app_id=BOT_APP_ID.upper(), app_host=HOST)
        assert again["id"] == manifest["id"] != BOT_APP_ID

    def test_bot_works_in_personal_team_and_group_chats_with_its_commands(self, manifest):
        bot = manifest["bots"][0]
        assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
        titles = {c["title"] for entry in bot["commandLists"] for c in entry["commands"]}
        from shared.services.bot import COMMANDS

        answered = {usage.split()[0] for usage, _ in COMMANDS}
        # The commands Teams suggests are ones the bot answers; the others are in its help.
        assert titles <= answered and len(titles) == len(answered) - 3
        assert {"ack", "note", "assign", "snooze", "silence"} <= titles

    def test_the_bot_is_offered_in_shared_and_private_channels(self, manifest):
        assert set(manifest["supportedChannelTypes"]) == {"sharedChannels", "privateChannels"}

    def test_colour_icon_is_192_square_and_opaque(self, package):
        data = package.read(package.getinfo("color.png"))
        assert png_header(data)[:2] == (192, 192)
        assert all(row[3::4] == b"\xff" * 192 for row in pixels(data))

    def test_outline_icon_is_32_square_white_on_transparent(self, package):
        data = package.read("outline.png")
        assert png_header(data)[:2] == (32, 32)
        rows = pixels(data)
        alphas = b"".join(row[3::4] for row in rows)
        assert 0 in alphas and max(alphas) == 255, "needs both transparent and drawn pixels"
        for row in rows:
            for x in range(32):
                r, g, b, a = row[4 * x : 4 * x + 4]
                assert a == 0 or (r, g, b) == (255, 255, 255)

    def test_building_twice_gives_the_same_bytes(self, tmp_path):
        first, second = tmp_path / "a.zip", tmp_path / "b.zip"
        for out in (first, second):
            build.main(["--bot-app-id", BOT_APP_ID, "--app-host", HOST, "--out", str(out)])
        assert first.read_bytes() == second.read_bytes()


class TestBuildRefusesBadInput:
    def test_bot_id_must_be_a_guid(self):
        with pytest.raises(build.PackageError, match="bot-app-id"):
            build.build_manifest(bot_app_id="not-a-guid", app_host=HOST)

    def test_host_must_be_a_host_name(self):
        with pytest.raises(build.PackageError, match="app-host"):
            build.build_manifest(bot_app_id=BOT_APP_ID, app_host="https://example.com/api")

    def test_a_manifest_off_the_schema_is_not_packaged(self, tmp_path):
        manifest = build.build_manifest(bot_app_id=BOT_APP_ID, app_host=HOST)
        manifest["bots"][0]["scopes"].append("meeting")
        with pytest.raises(build.PackageError, match="scopes"):
            build.write_package(manifest, tmp_path / "bad.zip")
        assert not (tmp_path / "bad.zip").exists()

    def test_the_schema_checks_manifest_version_const(self):
        manifest = build.build_manifest(bot_app_id=BOT_APP_ID, app_host=HOST)
        schema = json.loads(build.schema_path(manifest["manifestVersion"]).read_text())
        expected, manifest["manifestVersion"] = manifest["manifestVersion"], "1.0"
        assert any(expected in e.message for e in build.manifest_validator(schema).iter_errors(manifest))

    def test_the_bot_id_can_come_from_the_environment(self, tmp_path, monkeypatch):
        monkeypatch.setenv("BOT_APP_ID", BOT_APP_ID)
        monkeypatch.setenv("APP_HOST", HOST)
        out = tmp_path / "env.zip"
        assert build.main(["--out", str(out)]) == 0
        assert json.loads(zipfile.ZipFile(out).read("manifest.json"))["bots"][0]["botId"] == BOT_APP_ID


def test_committed_icons_are_what_the_icon_script_draws():
    from tools import make_icons

    assert (ROOT / "appPackage" / "color.png").read_bytes() == make_icons.draw(make_icons.COLOR_SIZE, outline=False)
    assert (ROOT / "appPackage" / "outline.png").read_bytes() == make_icons.draw(make_icons.OUTLINE_SIZE, outline=True)


class TestTheConsolesPackage:
    """What the console's Connection page downloads: the same manifest `make package` builds,
    valid against the pinned Teams schema, zipped the same way."""

    BOT = "0c7a9d55-0000-4000-8000-0000000000cb"
    HOST = "func-alerts.azurewebsites.net"

    def test_is_the_manifest_make_package_builds_and_the_schema_takes(self):
        from shared.app_package import manifest_for

        manifest = manifest_for(self.BOT, f"https://{self.HOST}/")
        assert manifest == build.build_manifest(bot_app_id=self.BOT, app_host=self.HOST)
        assert build.validation_errors(manifest) == []
        assert manifest["bots"][0]["botId"] == self.BOT and self.HOST in json.dumps(manifest["validDomains"])

    def test_zips_the_manifest_and_both_icons_the_same_way_every_time(self, tmp_path):
        import io
        import zipfile

        from shared.app_package import manifest_for, package_bytes

        manifest = manifest_for(self.BOT, self.HOST)
        data = package_bytes(manifest)
        assert data == package_bytes(manifest)
        assert data == build.write_package(manifest, tmp_path / "p.zip").read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
            assert json.loads(zf.read("manifest.json")) == manifest

    def test_says_what_is_missing_for_a_deployment_with_no_bot_or_no_public_name(self):
        from shared.app_package import PackageError, manifest_for

        with pytest.raises(PackageError, match="BOT_APP_ID"):
            manifest_for("", self.HOST)
        with pytest.raises(PackageError, match="DNS name"):
            manifest_for(self.BOT, "127.0.0.1:7071")

    def test_the_version_is_pyprojects(self):
        from shared.version import VERSION

        assert build.project_version() == VERSION
