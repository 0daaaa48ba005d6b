"""Discovery endpoints (RFC 7644 §4) and the shapes of their documents (RFC 7643 §5, §6, §7)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.mapping.model import MappingConfig
from tests.conftest import Backend, make_client
from tests.helpers import ENTERPRISE, GROUP_SCHEMA, SCIM, USER_SCHEMA

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
TYPES = {"string", "boolean", "decimal", "integer", "dateTime", "binary", "reference", "complex"}
MUTABILITY = {"readOnly", "readWrite", "immutable", "writeOnly"}
RETURNED = {"always", "never", "default", "request"}
UNIQUENESS = {"none", "server", "global"}


@pytest.fixture
def embedded(openldap_mapping: MappingConfig) -> TestClient:
    from bridge.directory.embedded import EmbeddedDirectory
    from bridge.runtime import seed_structure

    directory = EmbeddedDirectory()
    seed_structure(directory, openldap_mapping)
    return make_client(
        Backend("embedded", directory, openldap_mapping),
        max_results=250,
        default_count=50,
        bulk_max_operations=77,
        bulk_max_payload_bytes=123456,
    )


def check_attribute(attr: dict[str, Any], *, sub: bool = False) -> None:
    """RFC 7643 §7: the characteristics every attribute definition carries."""
    for key in (
        "name",
        "type",
        "multiValued",
        "required",
        "caseExact",
        "mutability",
        "returned",
        "uniqueness",
    ):
        assert key in attr, (attr.get("name"), key)
    assert isinstance(attr["name"], str) and attr["name"]
    assert attr["type"] in TYPES
    for flag in ("multiValued", "required", "caseExact"):
        assert isinstance(attr[flag], bool)
    assert attr["mutability"] in MUTABILITY
    assert attr["returned"] in RETURNED
    assert attr["uniqueness"] in UNIQUENESS
    assert isinstance(attr.get("description", ""), str)
    if "canonicalValues" in attr:
        assert all(isinstance(v, str) for v in attr["canonicalValues"])
    if attr["type"] == "reference":
        assert attr["referenceTypes"] and all(isinstance(v, str) for v in attr["referenceTypes"])
    else:
        assert "referenceTypes" not in attr
    if attr["type"] == "complex":
        assert not sub, "sub-attributes cannot be complex (RFC 7643 §2.3.8)"
        assert attr["subAttributes"]
        for s in attr["subAttributes"]:
            check_attribute(s, sub=True)
    else:
        assert "subAttributes" not in attr


def test_service_provider_config_advertises_what_is_supported(embedded: TestClient) -> None:
    r = embedded.get(f"{SCIM}/ServiceProviderConfig")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/scim+json")
    spc = r.json()
    assert spc["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert spc["patch"] == {"supported": True}
    assert spc["bulk"] == {"supported": True, "maxOperations": 77, "maxPayloadSize": 123456}
    assert spc["filter"] == {"supported": True, "maxResults": 250}
    assert spc["changePassword"] == {"supported": True}
    assert spc["sort"] == {"supported": True}
    assert spc["etag"] == {"supported": True}
    assert spc["pagination"] == {
        "cursor": True,
        "index": True,
        "defaultPaginationMethod": "index",
        "defaultPageSize": 50,
        "maxPageSize": 250,
        "cursorTimeout": None,
    }
    (scheme,) = spc["authenticationSchemes"]
    assert scheme["type"] == "oauthbearertoken" and scheme["name"] and scheme["description"]
    assert spc["meta"] == {
        "resourceType": "ServiceProviderConfig",
        "location": f"https://scim.example.test{SCIM}/ServiceProviderConfig",
    }
    assert "id" not in spc  # RFC 7643 §5: no id


def test_resource_types(embedded: TestClient, openldap_mapping: MappingConfig) -> None:
    body = embedded.get(f"{SCIM}/ResourceTypes").json()
    assert body["schemas"] == [LIST]
    assert body["totalResults"] == len(body["Resources"]) == len(openldap_mapping.resources)
    by_id = {r["id"]: r for r in body["Resources"]}
    user, group = by_id["User"], by_id["Group"]
    for rt in (user, group):
        assert rt["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]
        assert {"id", "name", "endpoint", "schema", "meta"} <= set(rt)
        assert rt["meta"]["resourceType"] == "ResourceType"
        assert rt["meta"]["location"].endswith(f"/ResourceTypes/{rt['id']}")
    assert user["endpoint"] == "/Users" and user["schema"] == USER_SCHEMA
    assert user["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert group["endpoint"] == "/Groups" and group["schema"] == GROUP_SCHEMA
    assert "schemaExtensions" not in group
    single = embedded.get(f"{SCIM}/ResourceTypes/User")
    assert single.status_code == 200 and single.json() == user
    missing = embedded.get(f"{SCIM}/ResourceTypes/Printer")
    assert missing.status_code == 404 and missing.json()["schemas"] == [ERROR]


def test_schemas_list_only_mapped_attributes(
    embedded: TestClient, openldap_mapping: MappingConfig
) -> None:
    body = embedded.get(f"{SCIM}/Schemas").json()
    assert body["schemas"] == [LIST]
    by_id = {s["id"]: s for s in body["Resources"]}
    assert set(by_id) == {USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE}
    for urn, doc in by_id.items():
        assert doc["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
        assert doc["name"] and doc["meta"]["resourceType"] == "Schema"
        assert doc["meta"]["location"].endswith(f"/Schemas/{urn}")
        for attr in doc["attributes"]:
            check_attribute(attr)
        names = [a["name"] for a in doc["attributes"]]
        assert len(names) == len(set(names))
        assert not {"id", "externalId", "meta"} & set(names)  # common attributes, §3.1
    mapped = {
        (a.schema, a.attr)
        for r in openldap_mapping.resources.values()
        for a in r.attributes
        if a.attr not in ("externalId",)
    }
    listed = {(urn, a["name"]) for urn, d in by_id.items() for a in d["attributes"]}
    assert listed == mapped
    user = {a["name"]: a for a in by_id[USER_SCHEMA]["attributes"]}
    assert "nickName" not in user and "x509Certificates" not in user  # not mapped
    assert user["userName"]["required"] and user["userName"]["uniqueness"] == "server"
    assert user["password"]["mutability"] == "writeOnly" and user["password"]["returned"] == "never"
    assert user["active"]["type"] == "boolean"
    groups = user["groups"]
    assert groups["mutability"] == "readOnly" and groups["multiValued"]
    emails = user["emails"]
    assert emails["type"] == "complex" and emails["multiValued"]
    subs = {s["name"]: s for s in emails["subAttributes"]}
    assert set(subs) == {"value", "type", "primary"}
    assert subs["type"]["canonicalValues"] == ["work"]  # only the mapped type
    phones = {s["name"]: s for s in user["phoneNumbers"]["subAttributes"]}
    assert phones["type"]["canonicalValues"] == ["work", "mobile"]
    name = {s["name"] for s in user["name"]["subAttributes"]}
    assert name == {"givenName", "familyName", "formatted"}
    members = {
        s["name"]: s
        for s in {a["name"]: a for a in by_id[GROUP_SCHEMA]["attributes"]}["members"][
            "subAttributes"
        ]
    }
    assert members["$ref"]["type"] == "reference" and members["$ref"]["mutability"] == "readOnly"
    assert members["type"]["canonicalValues"] == ["User", "Group"]
    manager = {a["name"]: a for a in by_id[ENTERPRISE]["attributes"]}["manager"]
    assert not manager["multiValued"] and "value" in {s["name"] for s in manager["subAttributes"]}


def test_schema_by_urn_and_unknown(embedded: TestClient) -> None:
    r = embedded.get(f"{SCIM}/Schemas/{ENTERPRISE}")
    assert r.status_code == 200 and r.json()["id"] == ENTERPRISE
    assert embedded.get(f"{SCIM}/Schemas/{ENTERPRISE.upper()}").json()["id"] == ENTERPRISE
    missing = embedded.get(f"{SCIM}/Schemas/urn:example:nothing")
    assert missing.status_code == 404 and missing.json()["schemas"] == [ERROR]


@pytest.mark.parametrize("path", ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"])
def test_filter_on_discovery_is_forbidden(embedded: TestClient, path: str) -> None:
    """RFC 7644 §4: a filter SHOULD be answered with 403."""
    r = embedded.get(f"{SCIM}{path}", params={"filter": 'id eq "User"'})
    assert r.status_code == 403 and r.json()["schemas"] == [ERROR]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_discovery_is_read_only(embedded: TestClient, method: str) -> None:
    r = embedded.request(method.upper(), f"{SCIM}/Schemas", json={})
    assert r.status_code == 405 and r.json()["schemas"] == [ERROR]


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_me_is_not_implemented(embedded: TestClient, method: str) -> None:
    kw: dict[str, Any] = {"json": {}} if method == "post" else {}
    r = getattr(embedded, method)(f"{SCIM}/Me", **kw)
    assert r.status_code == 501
    assert r.json()["schemas"] == [ERROR] and r.json()["status"] == "501"


def test_discovery_needs_the_token(embedded: TestClient) -> None:
    r = embedded.get(f"{SCIM}/ServiceProviderConfig", headers={"Authorization": ""})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_discovery_from_the_active_directory_mapping() -> None:
    """Every shipped mapping produces valid discovery documents."""
    from pathlib import Path

    from bridge.mapping.load import load_mapping
    from bridge.service import discovery

    for path in sorted(Path(__file__).resolve().parent.parent.glob("mappings/*.yaml")):
        mapping = load_mapping(path)
        for doc in discovery.schemas(mapping, "https://x"):
            for attr in doc["attributes"]:
                check_attribute(attr)
        for rt in discovery.resource_types(mapping, "https://x"):
            assert rt["schema"] in discovery.schema_ids(mapping)
