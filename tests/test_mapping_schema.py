"""The JSON Schema for mapping files (bridge/data/mapping.schema.json): shipped in the package,
referenced from every example mapping, valid for them, and in agreement with mapping/load.py."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bridge.errors import ConfigError
from bridge.mapping import attributes, load
from bridge.mapping import policy as dp
from bridge.mapping.codecs import CODECS

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = sorted((ROOT / "mappings").glob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    text = files("bridge").joinpath("data/mapping.schema.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: p.name)
def test_example_mappings_validate_and_reference_the_schema(
    schema: dict[str, Any], path: Path
) -> None:
    text = path.read_text("utf-8")
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1].strip()).resolve()
    assert target == (ROOT / "bridge" / "data" / "mapping.schema.json").resolve()
    jsonschema.validate(yaml.safe_load(text), schema)


def test_schema_agrees_with_the_loader(schema: dict[str, Any]) -> None:
    resource = schema["$defs"]["resource"]["properties"]
    attribute = schema["$defs"]["attribute"]["properties"]
    assert set(schema["properties"]) == load._TOP_KEYS
    assert set(resource) == load._RES_KEYS
    assert set(attribute) == attributes.ATTR_KEYS
    assert set(resource["id"]["properties"]) == {"ldap", "type"}
    assert set(resource["rdn"]["properties"]) == {"ldap", "from"}
    assert set(resource["meta"]["properties"]) == {"created", "last_modified", "version"}
    assert set(resource["deprovision"]["properties"]) == {"on_deactivate", "on_delete"}
    (names, move) = resource["deprovision"]["properties"]["on_delete"]["items"]["oneOf"]
    assert {*names["enum"], *move["properties"]} == set(dp.ACTIONS)
    assert set(resource["derived"]["additionalProperties"]["properties"]["type"]["enum"]) == set(
        CODECS
    )
    assert set(attribute["type"]["enum"]) == set(CODECS)
    assert set(resource["id"]["properties"]["type"]["enum"]) == set(CODECS)
    assert set(schema["properties"]["dialect"]["enum"]) == set(load.DIALECTS)
    assert set(attribute["mutability"]["enum"]) == attributes.MUTABILITY
    assert set(attribute["returned"]["enum"]) == attributes.RETURNED


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["resources"]["User"].update(colour="blue"),
        lambda m: m["resources"]["User"]["attributes"]["title"].update(ldpa="title"),
        lambda m: m["resources"]["User"]["attributes"]["title"].update(type="stringy"),
        lambda m: m.update(dialect="novell"),
        lambda m: m["resources"]["User"]["attributes"].update({"bad key!": {"ldap": "x"}}),
    ],
)
def test_schema_and_loader_both_reject(schema: dict[str, Any], edit: Any) -> None:
    data = yaml.safe_load(MAPPINGS[0].read_text("utf-8"))
    edit(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    with pytest.raises(ConfigError):
        load.parse_mapping(yaml.safe_dump(data))
