"""Every example setup validates, conforms to the exported JSON Schema, and the committed schema is current."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from inferform.setup.group import json_schema as group_schema
from inferform.setup.spec import json_schema
from tests.conftest import ROOT, SETUPS

REQUIRED = {"demo", "rtx3060-chat", "coder-4080", "gpt-oss-120b-8gb", "llama70b-spot", "free-tier-cpu"}


def test_the_examples_the_brief_asks_for_exist():
    assert {p.stem for p in SETUPS} >= REQUIRED


@pytest.mark.parametrize("path", SETUPS, ids=lambda p: p.name)
def test_setup_validates(cli, path):
    result = cli("validate", str(path))
    assert result.code == 0, result.err


@pytest.mark.parametrize("path", SETUPS, ids=lambda p: p.name)
def test_setup_matches_json_schema(path):
    data = yaml.safe_load(path.read_text())
    jsonschema.validate(data, group_schema() if "models" in data else json_schema())


def test_committed_group_schema_is_current():
    committed = json.loads((ROOT / "setups" / "group.schema.json").read_text())
    assert committed == group_schema(), "run: inferform schema --group > setups/group.schema.json"


def test_schema_rejects_what_the_loader_rejects():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "use_case": "chat", "target": {"kind": "local"}, "bogus": 1},
                            json_schema())


def test_committed_schema_is_current():
    committed = json.loads((ROOT / "setups" / "setup.schema.json").read_text())
    assert committed == json_schema(), "run: inferform schema > setups/setup.schema.json"


def test_every_schema_field_has_a_description():
    schema = json_schema()

    def walk(props: dict, where: str) -> None:
        for name, prop in props.items():
            assert prop.get("description"), f"{where}.{name} has no description"

    walk(schema["properties"], "Setup")
    for name, definition in schema["$defs"].items():
        walk(definition.get("properties", {}), name)


def test_schema_command_prints_the_schema(cli):
    result = cli("schema")
    assert result.code == 0
    assert json.loads(result.out)["properties"]["use_case"]["enum"][0] == "chat"
