"""POSIX account data of a resource (RFC 2307): numbers allocated from a range, and attributes
built from templates over SCIM values.  Parsed from the mapping's ``allocate:`` and
``templates:`` keys; the service (service/allocate.py) applies them on create::

    allocate:
      uidNumber: {range: [10000, 59999], counter: "cn=uidNext,ou=counters,dc=example,dc=org"}
    templates:
      homeDirectory: "/home/{userName}"

``counter`` is the DN of an entry holding the next number to try in ``counter_attr`` (default:
the allocated attribute itself); the bridge moves it forward with a compare-and-swap modify.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Mapped(Protocol):
    """What the templates' check reads of a mapped attribute (mapping.model.AttributeMap):
    a Protocol, so this module, which the model imports, does not import the model back."""

    @property
    def path(self) -> str: ...


_FIELD = re.compile(r"\{([^{}]*)\}")
_LDAP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


@dataclass(frozen=True)
class Allocation:
    """Numbers for ``ldap`` (uidNumber, gidNumber) handed out from ``low``..``high``."""

    ldap: str
    low: int
    high: int
    counter: str  # DN of the counter entry
    counter_attr: str  # its attribute holding the next number to try


@dataclass(frozen=True)
class Template:
    """``ldap`` written on create from ``text`` with each ``{path}`` replaced by the SCIM
    value at that mapped path (which must then be present and a safe path component)."""

    ldap: str
    text: str
    fields: tuple[str, ...]  # the mapped SCIM paths it names, as written in the mapping


@dataclass(frozen=True)
class PrivateGroup:
    """A user-private group: a group entry ``cn=<the user's RDN value>,<base_dn>`` created with
    the user and deleted with it, whose ``gidNumber`` (allocated through ``gid``) is the user's
    primary ``gidNumber``."""

    base_dn: str
    object_classes: tuple[str, ...]
    gid: Allocation


@dataclass(frozen=True)
class PosixSpec:
    allocations: tuple[Allocation, ...] = ()
    templates: tuple[Template, ...] = ()
    private_group: PrivateGroup | None = None


NONE = PosixSpec()
KEYS = ("allocate", "templates", "private_group")

Add = Callable[[str, str], None]


def parse(data: Mapping[str, Any], here: str, attributes: Sequence[Mapped], add: Add) -> PosixSpec:
    """The ``allocate:`` and ``templates:`` keys of a resource; problems go to ``add`` with
    their YAML path."""
    allocations = _allocations(data.get("allocate"), f"{here}.allocate", add)
    templates = _templates(data.get("templates"), f"{here}.templates", attributes, add)
    private = _private_group(data, f"{here}.private_group", add)
    if private is not None and any(a.ldap.lower() == "gidnumber" for a in allocations):
        add(f"{here}.private_group", "the private group gives gidNumber: drop allocate.gidNumber")
    if not (allocations or templates or private):
        return NONE
    return PosixSpec(allocations, templates, private)


def _private_group(data: Mapping[str, Any], where: str, add: Add) -> PrivateGroup | None:
    """``private_group: {base_dn: <DN>, object_classes: [...], gidNumber: {range, counter}}``."""
    spec = data.get("private_group")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        add(where, "expected {base_dn: <DN>, object_classes: [...], gidNumber: {range, counter}}")
        return None
    for key in spec:
        if key not in ("base_dn", "object_classes", "gidNumber"):
            add(
                f"{where}.{key}",
                f"unknown key {key!r} (allowed: base_dn, gidNumber, object_classes)",
            )
    constants = data.get("constants")
    if isinstance(constants, dict) and any(str(k).lower() == "gidnumber" for k in constants):
        add(where, "give either constants.gidNumber or a private group, not both")
    base_dn, classes = spec.get("base_dn"), spec.get("object_classes", ["top", "posixGroup"])
    ok = isinstance(base_dn, str) and "=" in base_dn
    if not ok:
        add(
            f"{where}.base_dn",
            f"expected the DN the private groups are created in, got {base_dn!r}",
        )
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        add(f"{where}.object_classes", "expected a non-empty list of object class names")
        ok = False
    if "gidNumber" not in spec:
        add(f"{where}.gidNumber", "expected {range: [low, high], counter: <DN>}")
        return None
    gid = _allocation("gidNumber", spec["gidNumber"], f"{where}.gidNumber", add)
    if not ok or gid is None:
        return None
    return PrivateGroup(str(base_dn), tuple(classes), gid)


def _allocations(data: Any, here: str, add: Add) -> tuple[Allocation, ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        add(here, "expected a mapping of LDAP attribute -> {range: [low, high], counter: <DN>}")
        return ()
    out = []
    for attr, spec in data.items():
        where = f"{here}.{attr}"
        found = _allocation(str(attr), spec, where, add)
        if found is not None:
            out.append(found)
    return tuple(out)


def _allocation(attr: str, spec: Any, where: str, add: Add) -> Allocation | None:
    if not isinstance(spec, dict):
        add(where, "expected {range: [low, high], counter: <DN>, counter_attr: <attribute>}")
        return None
    for key in spec:
        if key not in ("range", "counter", "counter_attr"):
            add(f"{where}.{key}", f"unknown key {key!r} (allowed: counter, counter_attr, range)")
    bounds = spec.get("range")
    ok = (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        and 0 <= bounds[0] <= bounds[1] < 2**31
    )
    if not ok:
        add(f"{where}.range", f"expected [low, high] with 0 <= low <= high < 2^31, got {bounds!r}")
    counter = spec.get("counter")
    if not isinstance(counter, str) or "=" not in counter:
        add(f"{where}.counter", f"expected the DN of the counter entry, got {counter!r}")
        ok = False
    counter_attr = spec.get("counter_attr", attr)
    if not isinstance(counter_attr, str) or not _LDAP_NAME.fullmatch(counter_attr):
        add(f"{where}.counter_attr", f"expected an LDAP attribute name, got {counter_attr!r}")
        ok = False
    if not _LDAP_NAME.fullmatch(attr):
        add(where, f"{attr!r} is not an LDAP attribute name")
        ok = False
    if not ok or not isinstance(bounds, list) or not isinstance(counter, str):
        return None
    return Allocation(attr, bounds[0], bounds[1], counter, str(counter_attr))


def _templates(
    data: Any, here: str, attributes: Sequence[Mapped], add: Add
) -> tuple[Template, ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        add(here, 'expected a mapping of LDAP attribute -> "text with {scim path}"')
        return ()
    paths = {a.path.lower() for a in attributes}
    out = []
    for attr, text in data.items():
        where = f"{here}.{attr}"
        if not isinstance(text, str) or not text:
            add(where, f'expected a string such as "/home/{{userName}}", got {text!r}')
            continue
        fields = tuple(_FIELD.findall(text))
        unknown = [f for f in fields if f.lower() not in paths]
        if unknown or "{" in _FIELD.sub("", text) or "}" in _FIELD.sub("", text):
            add(where, f"{text!r}: every {{...}} must name a mapped SCIM path ({unknown or text})")
            continue
        out.append(Template(str(attr), text, fields))
    return tuple(out)
