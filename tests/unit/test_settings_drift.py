"""Every setting the code reads is set in Bicep, listed in the local sample and in docs/SETTINGS.md
table, and nothing stale remains; the check fails on copies with one thing out of step."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tools import settings_drift as drift

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_BICEP = Path("infra/app/function.bicep")
SAMPLE = Path("local.settings.sample.json")

FUNCTION_APP = """import azure.functions as func
app = func.FunctionApp()

@app.service_bus_queue_trigger(arg_name="msg", queue_name="%ALERT_EVENTS_QUEUE%", connection="ServiceBusConnection")
def alert_events(msg): ...

@app.service_bus_queue_trigger(
    arg_name="m", queue_name="%DELIVERY_QUEUE%", connection="ServiceBusConnection", is_sessions_enabled=True
)
def deliveries(m): ...

@app.timer_trigger(arg_name="timer", schedule="%PERIODIC_SCHEDULE%")
def periodic(timer): ...
"""


def settings_names() -> list[str]:
    return [s.name for s in drift.load_specs(ROOT)]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the parts of the repository the check reads, with docs/SETTINGS.md holding the table."""
    for part in ("shared", "infra"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / SAMPLE, tmp_path / SAMPLE)
    (tmp_path / "function_app.py").write_text(FUNCTION_APP)
    (tmp_path / "docs").mkdir()
    (tmp_path / drift.SETTINGS_DOC).write_text(
        f"# Settings\n\n{drift.TABLE_START}\n{drift.render_table(drift.load_specs(ROOT))}{drift.TABLE_END}\n"
    )
    (tmp_path / drift.TABLE_FILE).write_text(drift.render_table(drift.load_specs(ROOT)))
    return tmp_path


def problems(root: Path) -> str:
    return "\n".join(drift.check(root).problems)


def remove_bicep_setting(root: Path, name: str) -> None:
    path = root / FUNCTION_BICEP
    text, count = re.subn(r"\{\s*name: '" + re.escape(name) + r"'\s*value: [^\n]*\n\s*\}\n", "", path.read_text())
    assert count == 1, f"{name} not found once in {path}"
    path.write_text(text)


def edit_sample(root: Path, change) -> None:
    data = json.loads((root / SAMPLE).read_text())
    change(data["Values"])
    (root / SAMPLE).write_text(json.dumps(data, indent=2))


class TestTheRepository:
    def test_settings_are_in_step(self):
        report = drift.check(ROOT)
        assert report.ok, "\n".join(report.problems)

    def test_the_committed_table_is_the_generated_one(self):
        assert (ROOT / drift.TABLE_FILE).read_text() == drift.render_table(drift.load_specs(ROOT))


class TestACopyInStep:
    def test_passes(self, copy):
        assert problems(copy) == ""

    def test_passes_without_function_app_with_a_note(self, copy):
        (copy / "function_app.py").unlink()
        report = drift.check(copy)
        assert report.ok and "function_app.py not found" in report.notes[0]


class TestACopyWithOneSettingRemoved:
    """The negative twin of TestTheRepository: each copy differs by one setting."""

    @pytest.mark.parametrize("name", settings_names())
    def test_fails_when_bicep_no_longer_sets_it(self, copy, name):
        remove_bicep_setting(copy, name)
        assert re.search(rf"Bicep app settings miss .*\b{re.escape(name)}\b", problems(copy))

    @pytest.mark.parametrize("name", settings_names())
    def test_fails_when_the_sample_no_longer_lists_it(self, copy, name):
        edit_sample(copy, lambda values: values.pop(name))
        assert re.search(rf"local.settings.sample.json misses: .*\b{re.escape(name)}\b", problems(copy))

    def test_fails_when_the_readme_table_drops_a_row(self, copy):
        readme = copy / drift.SETTINGS_DOC
        readme.write_text("\n".join(line for line in readme.read_text().splitlines() if "`BOT_TOKEN_URL`" not in line))
        assert "docs/SETTINGS.md settings table misses: BOT_TOKEN_URL" in problems(copy)

    def test_fails_when_the_code_stops_reading_it(self, copy):
        settings = copy / "shared" / "settings.py"
        text, count = re.subn(
            r'\n    SettingSpec\(\s*"REMINDER_AFTER_MINUTES".*?\n    \),\n', "\n", settings.read_text(), flags=re.S
        )
        assert count == 1
        settings.write_text(text.replace('"REMINDER_AFTER_MINUTES"', '"REMINDER_AFTER_MINUTES_GONE"'))
        found = problems(copy)
        assert "Bicep app settings set names nothing reads: REMINDER_AFTER_MINUTES" in found
        assert "local.settings.sample.json lists names nothing reads: REMINDER_AFTER_MINUTES" in found
        assert "docs/SETTINGS.md settings table lists names nothing reads: REMINDER_AFTER_MINUTES" in found


class TestOtherDrift:
    def test_a_stale_name_in_the_sample_fails(self, copy):
        edit_sample(copy, lambda values: values.update(OLD_SETTING="x"))
        assert "local.settings.sample.json lists names nothing reads: OLD_SETTING" in problems(copy)

    def test_a_new_setting_must_reach_every_place(self, copy):
        settings = copy / "shared" / "settings.py"
        settings.write_text(
            settings.read_text().replace(
                "SETTINGS: tuple[SettingSpec, ...] = (\n",
                (
                    'SETTINGS: tuple[SettingSpec, ...] = (\n    SettingSpec("EXAMPLE_NEW_KEY", "Key of an example '
                    'feature.", secret=True),\n'
                ),
            )
        )
        found = problems(copy)
        assert "Bicep app settings miss settings the code reads: EXAMPLE_NEW_KEY" in found
        assert "local.settings.sample.json misses: EXAMPLE_NEW_KEY" in found
        assert "docs/SETTINGS.md settings table misses: EXAMPLE_NEW_KEY" in found

    def test_a_changed_description_makes_the_tables_out_of_date(self, copy):
        settings = copy / "shared" / "settings.py"
        settings.write_text(
            settings.read_text().replace("Service Bus queue the alert events arrive on.", "Queue of alert events.")
        )
        found = problems(copy)
        assert (
            "docs/SETTINGS.md settings table is out of date" in found
            and f"{drift.TABLE_FILE} is not the current table" in found
        )
        drift.write_tables(copy)
        assert problems(copy) == ""

    def test_a_settings_page_without_the_markers_fails_with_what_to_do(self, copy):
        (copy / drift.SETTINGS_DOC).write_text("# Settings\n")
        assert "paste the output of `python -m tools.settings_drift --table`" in problems(copy)

    def test_a_secret_with_a_plain_value_in_bicep_fails(self, copy):
        main = copy / "infra" / "main.bicep"
        main.write_text(
            re.sub(r"botAppPasswordReference: .*", "botAppPasswordReference: botAppPassword", main.read_text())
        )
        assert "Bicep sets secret BOT_APP_PASSWORD to botAppPassword" in problems(copy)

    def test_a_secret_value_in_the_sample_fails(self, copy):
        edit_sample(copy, lambda values: values.update(BOT_APP_PASSWORD="s3cret"))
        assert "local.settings.sample.json holds a value for secret BOT_APP_PASSWORD" in problems(copy)

    def test_flex_consumption_rejects_the_worker_runtime_setting(self, copy):
        path = copy / FUNCTION_BICEP
        path.write_text(
            path.read_text().replace(
                "appSettings: [\n",
                (
                    "appSettings: [\n        {\n          name: 'FUNCTIONS_WORKER_RUNTIME'\n          value: "
                    "'python'\n        }\n"
                ),
                1,
            )
        )
        assert "Bicep sets FUNCTIONS_WORKER_RUNTIME, which Flex Consumption rejects" in problems(copy)

    def test_a_binding_expression_must_be_declared(self, copy):
        app = copy / "function_app.py"
        app.write_text(
            app.read_text() + '\n@app.timer_trigger(arg_name="t", schedule="%CLEANUP_SCHEDULE%")\ndef cleanup(t): ...\n'
        )
        assert "uses %CLEANUP_SCHEDULE% but SETTINGS has no CLEANUP_SCHEDULE" in problems(copy)

    def test_a_connection_must_be_declared(self, copy):
        app = copy / "function_app.py"
        app.write_text(app.read_text().replace('connection="ServiceBusConnection"', 'connection="OtherBus"'))
        found = problems(copy)
        assert "uses connection 'OtherBus'" in found
        assert (
            "ServiceBusConnection__fullyQualifiedNamespace is marked binding=True but function_app.py does not use it"
            in found
        )

    def test_reading_the_environment_outside_settings_fails(self, copy):
        (copy / "shared" / "sneaky.py").write_text("import os\nTOKEN = os.environ.get('TOKEN')\n")
        assert "shared/sneaky.py:2: os.environ reads the environment directly" in problems(copy)

    def test_dev_tools_and_tests_may_read_the_environment(self, copy):
        for folder in ("tools", "tests"):
            (copy / folder).mkdir()
            (copy / folder / "helper.py").write_text("from os import getenv\nX = getenv('X')\n")
        assert problems(copy) == ""

    def test_the_command_exits_1_on_drift(self, copy, capsys):
        edit_sample(copy, lambda values: values.pop("BOT_APP_ID"))
        assert drift.main(["--root", str(copy)]) == 1
        assert "local.settings.sample.json misses: BOT_APP_ID" in capsys.readouterr().out
