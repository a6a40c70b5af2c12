"""What `func azure functionapp publish` uploads: the app, and no tests, tools, local
settings or secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest

from tools import funcignore

ROOT = Path(__file__).resolve().parents[2]
MUST_SHIP = ("function_app.py", "host.json", "requirements.txt")
NEVER_SHIP_DIRS = ("tests", "tools", "node_modules", ".venv", ".tools", "docs", "infra", ".git")
NEVER_SHIP_NAMES = ("local.settings.json", "local.settings.sample.json", "requirements-dev.txt", "package.json")
RUNTIME_TOP_LEVEL = {
    "function_app.py",
    "host.json",
    "requirements.txt",
    "shared",
    "schemas",
    "appPackage",
    "__pycache__",
}
SECRET_SUFFIXES = (".pem", ".key", ".pfx", ".p12")


def assert_publishable(files: list[str]) -> None:
    for path in files:
        parts = Path(path).parts
        assert not set(parts[:-1]) & set(NEVER_SHIP_DIRS), f"{path} would be published"
        assert parts[-1] not in NEVER_SHIP_NAMES, f"{path} would be published"
        assert not parts[-1].endswith(SECRET_SUFFIXES) and not parts[-1].startswith(".env"), (
            f"{path} would be published"
        )
        assert not path.endswith(".md"), f"{path} would be published"
        if "__pycache__" in parts or path.endswith(".pyc"):
            assert is_app_bytecode(path), f"{path} would be published"


def is_app_bytecode(path: str) -> bool:
    """Bytecode the package carries: the runtime's (3.11) of function_app.py and of shared/."""
    parts = Path(path).parts
    return (
        parts[-2:-1] == ("__pycache__",)
        and parts[-1].endswith(".cpython-311.pyc")
        and (path == "__pycache__/function_app.cpython-311.pyc" or parts[0] == "shared")
    )


@pytest.fixture(scope="module")
def git_tree() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository")
    return funcignore.publish_tree_from_git(ROOT)


class TestThePublishTree:
    def test_from_git_holds_the_app_and_nothing_else(self, git_tree):
        assert_publishable(git_tree)
        for name in MUST_SHIP:
            if (ROOT / name).exists():  # function_app.py arrives with the app code
                assert name in git_tree
        assert any(p.startswith("shared/") and p.endswith(".py") for p in git_tree)
        # The console's pages are files the app reads, not Python: they ship too.
        for part in (
            "shared/console/templates/connection.html",
            "shared/console/static/console.css",
            "appPackage/manifest.json",
            "appPackage/color.png",
        ):
            assert part in git_tree, part

    def test_from_disk_is_what_core_tools_would_upload(self):
        # Core Tools does not read .gitignore: .venv, node_modules and local settings on disk
        # must be excluded by .funcignore itself.
        tree = funcignore.publish_tree_from_disk(ROOT)
        assert_publishable(tree)
        assert "host.json" in tree and "requirements.txt" in tree
        assert "shared/settings.py" in tree

    def test_only_known_top_level_entries_are_published(self):
        # Anything new at the top level must be a deliberate choice: runtime code, or .funcignore.
        top = {Path(p).parts[0] for p in funcignore.publish_tree_from_disk(ROOT)}
        assert top <= RUNTIME_TOP_LEVEL, (
            f"add {sorted(top - RUNTIME_TOP_LEVEL)} to .funcignore, or here if the app needs it"
        )


class TestFuncignoreCatchesFilesThatDoNotExistYet:
    FIXTURE: ClassVar = [
        "function_app.py",
        "host.json",
        "requirements.txt",
        "shared/__init__.py",
        "shared/domain/model.py",
        "schemas/alert-event.schema.json",
        "tests/unit/test_x.py",
        "tools/localhost/run.py",
        "node_modules/a/index.js",
        ".venv/lib/site.py",
        "local.settings.json",
        "docs/DEPLOY.md",
        "README.md",
        "certs/bot.pem",
        "shared/private.key",
        ".env",
        "shared/__pycache__/model.cpython-311.pyc",
        "infra/main.bicep",
        "appPackage/manifest.json",
        "requirements-dev.txt",
        ".tools/checkov/bin/checkov",
        # Nested: Core Tools matches from the start of the path, so these need "**/" patterns.
        "shared/adapters/certs/graph.pem",
        "schemas/private.key",
        "shared/bot.pfx",
        "shared/domain/client.p12",
        "shared/ca.crt",
        "shared/.env",
        "shared/.env.local",
        "shared/local.settings.json",
        "shared/domain/__pycache__/x.cpython-311.pyc",
        "shared/domain/__pycache__/x.cpython-312.pyc",
        "__pycache__/function_app.cpython-311.pyc",
        "__pycache__/conftest.cpython-311.pyc",
        "tests/__pycache__/x.cpython-311.pyc",
        "tools/localhost/__pycache__/run.cpython-311.pyc",
        ".venv/lib/__pycache__/site.cpython-311.pyc",
        "shared/stray.pyc",
        "shared/NOTES.md",
        "shared/debug.log",
    ]
    SHIPPED: ClassVar = {
        "function_app.py",
        "host.json",
        "requirements.txt",
        "shared/__init__.py",
        "shared/domain/model.py",
        "schemas/alert-event.schema.json",
        "appPackage/manifest.json",  # the console builds the deployment's Teams app package from it
        # The app's bytecode for the runtime (tools/bytecode.py), and no other.
        "__pycache__/function_app.cpython-311.pyc",
        "shared/__pycache__/model.cpython-311.pyc",
        "shared/domain/__pycache__/x.cpython-311.pyc",
    }

    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        for rel in self.FIXTURE:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text("x")
        shutil.copy(ROOT / ".funcignore", tmp_path / ".funcignore")
        return tmp_path

    def test_only_the_app_is_published(self, tree):
        assert set(funcignore.publish_tree_from_disk(tree)) == self.SHIPPED

    def test_core_tools_and_git_read_funcignore_alike(self, tree):
        """What ships (Core Tools' reading) is what a reader who takes .funcignore for a
        gitignore file expects."""
        assert funcignore.publish_tree_from_disk(tree) == funcignore.gitignore_tree_from_disk(tree)

    def test_the_matcher_agrees_with_git(self, tree):
        # git implements gitignore semantics; our matcher must select the same files.
        if shutil.which("git") is None:
            pytest.skip("needs git")
        subprocess.run(["git", "init", "-q"], cwd=tree, check=True)
        listed = subprocess.run(
            ["git", "ls-files", "--others", f"--exclude-from={tree / '.funcignore'}"],
            cwd=tree,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert set(listed) == set(funcignore.gitignore_tree_from_disk(tree))


class TestCoreToolsSemantics:
    """Core Tools' own reading (GitIgnoreParser.cs, from codemix/gitignore-parser)."""

    @pytest.mark.parametrize(
        ("patterns", "path", "denied"),
        [
            ("*.pem", "bot.pem", True),
            ("*.pem", "certs/bot.pem", False),  # no basename matching: from the start of the path only
            ("**/*.pem", "certs/bot.pem", True),
            ("**/*.pem", "bot.pem", False),  # "**" is one or more characters, then the slash
            ("__pycache__/", "shared/__pycache__/x.pyc", False),
            ("**/__pycache__/", "shared/__pycache__/x.pyc", True),
            ("**/*.pyc\n!shared/**/__pycache__/*.cpython-311.pyc", "shared/a/__pycache__/x.cpython-311.pyc", False),
            ("**/*.pyc\n!shared/**/__pycache__/*.cpython-311.pyc", "tests/__pycache__/x.cpython-311.pyc", True),
            ("tests", "tests_data/x.json", True),  # a prefix: no end anchor
            ("/build", "build/x", True),
            ("*.py[cod]", "x.pyc", False),  # brackets are literal characters
            ("file?.txt", "file1.txt", False),  # so is "?"
            ("*.key\n!public.key", "public.key", False),  # a negation wins, whatever the order
            ("!public.key\n*.key", "public.key", False),
            ("secrets/\n!secrets/ok", "secrets/ok", False),  # unlike git, re-included below an excluded folder
        ],
    )
    def test_patterns(self, patterns, path, denied):
        assert funcignore.CoreToolsIgnore(patterns).denies(path) is denied


def test_the_repository_means_the_same_to_core_tools_and_to_git():
    assert funcignore.publish_tree_from_disk(ROOT) == funcignore.gitignore_tree_from_disk(ROOT)


class TestGitignoreSemantics:
    @pytest.mark.parametrize(
        ("patterns", "path", "ignored"),
        [
            ("tests/", "tests/unit/a.py", True),
            ("tests/", "shared/tests", False),  # a file, and the pattern names directories
            ("/build", "build/x", True),
            ("/build", "shared/build/x", False),
            ("*.md", "docs/a/b.md", True),
            ("docs/*.md", "docs/a/b.md", False),
            ("**/cache", "a/b/cache/x", True),
            ("a/**/b", "a/x/y/b", True),
            ("*.key\n!public.key", "public.key", False),
            ("secrets/\n!secrets/ok", "secrets/ok", True),  # no re-inclusion below an excluded directory
            ("*.py[cod]", "x.pyc", True),
        ],
    )
    def test_patterns(self, patterns, path, ignored):
        assert funcignore.is_ignored(funcignore.parse(patterns), path) is ignored


def test_requirements_do_not_pin_the_worker():
    # The Functions host provides azure-functions-worker; listing it breaks the Python worker.
    lines = (ROOT / "requirements.txt").read_text().lower().splitlines()
    assert not any(line.strip().startswith("azure-functions-worker") for line in lines)
