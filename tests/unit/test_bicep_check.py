"""The Bicep check (tools/bicep_check.py): Bicep's grammar for syntax, duplicate decorators from
the parsed tree, then the reference check. It passes on infra/ and fails on both broken copies
that once reached main."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.bicep import FIXTURES, INFRA, plant
from tools import bicep_check


def messages(path: Path) -> list[str]:
    return [f"{p.path.name}:{p.line}: {p.message}" for p in bicep_check.check(path)]


def test_infra_passes():
    assert messages(INFRA / "main.bicep") == []


def test_every_module_is_read():
    read = {p.name for p in bicep_check._modules(INFRA / "main.bicep")}
    assert read == {p.name for p in INFRA.rglob("*.bicep")}


def test_the_function_bicep_of_2026_12_07_fails_on_its_two_descriptions(infra):
    shutil.copy(FIXTURES / "function-2026-12-07.bicep", infra / "app" / "function.bicep")
    assert messages(infra / "main.bicep") == [
        "function.bicep:72: @description is given twice to parameter 'publicBaseUrl' (first on line 71): "
        "a decorator may appear once (BCP166)"
    ]


def test_the_main_bicep_of_2026_11_23_fails_on_its_parameter_defaults(infra):
    shutil.copy(FIXTURES / "main-2026-11-23.bicep", infra / "main.bicep")
    found = [m for m in messages(infra / "main.bicep") if "BCP072" in m]
    assert len(found) == 10


def test_a_namespaced_decorator_counts_as_the_same_decorator(infra):
    plant(infra / "app" / "identity.bicep", "param name string", "@minLength(3)\n@sys.minLength(4)\nparam name string")
    assert any("@minLength is given twice" in m for m in messages(infra / "main.bicep"))


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("param location string = resourceGroup().location", "param location string = (", "main.bicep:"),
        ("param location string = resourceGroup().location", "param location = 'x'", "syntax error"),
        ("    name: identityName\n", "    name: identityName,,\n", "syntax error"),
        ("output ", "outptu ", "syntax error"),
        ("extension microsoftGraphV1", "extension", "syntax error"),
    ],
)
def test_a_syntax_error_is_found_with_its_line(infra, old, new, expected):
    target = infra / ("app/graph-app.bicep" if old.startswith("extension") else "main.bicep")
    plant(target, old, new)
    found = messages(infra / "main.bicep")
    assert any(expected in m and "syntax error" in m for m in found), found


def test_the_extension_keyword_is_read_as_the_grammar_knows_it():
    source = "extension microsoftGraphV1\nextension 'br:mcr.microsoft.com/x:1.0.0' with { a: 1 } as k\nvar x = 1\n"
    assert not bicep_check.parse_tree(source).root_node.has_error
    assert bicep_check.parse_tree("extension\nvar x = 1\n").root_node.has_error


def test_the_command_exits_1_on_an_error_and_0_on_infra(infra, capsys):
    assert bicep_check.main([str(INFRA / "main.bicep")]) == 0
    shutil.copy(FIXTURES / "function-2026-12-07.bicep", infra / "app" / "function.bicep")
    assert bicep_check.main([str(infra / "main.bicep")]) == 1
    assert "BCP166" in capsys.readouterr().err
