"""The Bicep reference check (tools/bicep_refs.py): not a compiler, but it finds the reference
errors Bicep refuses, in infra/ (none) and in the main.bicep of 2026-11-23 (its ten BCP072)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.bicep import plant
from tools import bicep_refs

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BEFORE = ROOT / "tests" / "fixtures" / "bicep" / "main-2026-11-23.bicep"


def messages(path: Path) -> list[str]:
    return [problem.message for problem in bicep_refs.check(path)]


def test_infra_has_no_reference_error():
    assert [str(p) for p in bicep_refs.check(INFRA / "main.bicep")] == []


def test_the_main_bicep_of_2026_11_23_fails_on_its_parameter_defaults(infra):
    shutil.copy(BEFORE, infra / "main.bicep")
    found = [m for m in messages(infra / "main.bicep") if "BCP072" in m]
    assert len(found) == 10 and all("uses the variable 'resourceToken'" in m for m in found)


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        (
            "main.bicep",
            "param location string = resourceGroup().location",
            "param location string = resourceGroup().location\nvar region = location\nparam other string = region",
            "the default of parameter 'other' uses the variable 'region'",
        ),
        ("main.bicep", "    name: identityName\n", "    name: identityNmae\n", "'identityNmae' is not declared"),
        ("main.bicep", "toLower(uniqueString(", "toLowr(uniqueString(", "toLowr() is not a Bicep function"),
        (
            "main.bicep",
            "    name: identityName\n",
            "    name: identityName\n    colour: 'blue'\n",
            "module 'identity' (app/identity.bicep) has no parameter 'colour'",
        ),
        (
            "main.bicep",
            "    name: identityName\n",
            "",
            "module 'identity' (app/identity.bicep) needs parameter 'name', which is not given",
        ),
        (
            "main.bicep",
            "    alertEventsMaxDeliveryCount: alertEventsMaxDeliveryCount\n",
            "    alertEventsMaxDeliveryCount: 'ten'\n",
            "module 'serviceBus': parameter 'alertEventsMaxDeliveryCount' is int, given a string",
        ),
        (
            "main.bicep",
            "identity.outputs.principalId",
            "identity.outputs.principalID",
            "module 'identity' (app/identity.bicep) has no output 'principalID'",
        ),
        (
            "app/storage.bicep",
            "output name string = storage.name",
            "output name string = storage::blobService.name",
            "resource 'storage' has no nested resource 'blobService'",
        ),
        (
            "app/graph-app.bicep",
            "extension microsoftGraphV1\n",
            "",
            "resource 'microsoftGraph' is a Microsoft Graph type, and the file has no extension",
        ),
        (
            "app/graph-app.bicep",
            "extension microsoftGraphV1\n",
            "extension graphV1\n",
            "extension 'graphV1' is not in the extensions of the nearest bicepconfig.json",
        ),
        (
            "bicepconfig.json",
            "microsoftgraph/v1.0",
            "microsoftgraph-typo/v1.0",
            "the file has no extension that bicepconfig.json maps to the Microsoft Graph extension",
        ),
    ],
)
def test_a_planted_error_is_found(infra, file, old, new, expected):
    plant(infra / file, old, new)
    found = messages(infra / "main.bicep")
    assert any(expected in m for m in found), found


def test_every_resource_is_read_nested_ones_included():
    """What a scanner must see: each storage service and each Service Bus queue."""
    types = [(f, t) for f, _, t in bicep_refs.resources(INFRA / "main.bicep")]
    for service in ("blobServices", "queueServices", "tableServices"):
        assert ("storage.bicep", f"Microsoft.Storage/storageAccounts/{service}") in types
    assert types.count(("servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues")) == 3
