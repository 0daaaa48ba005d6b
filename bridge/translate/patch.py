"""PATCH (RFC 7644 §3.5.2) -> the minimal LDAP modify.

How a PATCH is planned, before anything is written (a PATCH is all-or-nothing):

1. Every operation is parsed and validated (op name, ``path`` via :func:`bridge.scim.path.
   parse_path`, value shape); the first bad one is a 400 that names it (index, op and path).
2. Ordinary attributes: the operations are applied, in order, to the current SCIM resource
   (rendered from the entry, ``members``/``groups`` left out), giving the new resource.  Only
   the LDAP attributes of the SCIM attributes the operations touched are re-encoded and compared
   with the entry, so an untouched attribute is never written (LAM#340: send only what changed).
3. ``members``: add/remove/replace become MODIFY_ADD/MODIFY_DELETE of just the affected DNs,
   the member list read at most once (:mod:`bridge.translate.members`).
4. A change of the attribute that names the entry is a rename (``new_rdn_value``); the RDN
   attribute itself is then left out of ``changes``.  The service's writer
   (:meth:`bridge.service.writes.Writer.write`) sends the modify first (carrying the If-Match
   assertion) and the rename after it, undoing the modify if the rename fails.

Planning is pure: the service gathers the inputs first (the operations, parsed once; the entry;
the current resource rendered from it) and :func:`plan` reaches the directory only through the
:class:`Lookups` it is given (references resolved in batched searches, the member list read at
most once).  Uniqueness of the new values is checked by the service after planning.

The SCIM half is pure: parsing operations (:mod:`bridge.scim.messages`), resolving paths and
evaluating value filters (:mod:`bridge.scim.valuepath`), applying an operation to a resource
dict (:mod:`bridge.scim.patch`).

Tolerated IdP shapes are commented where they are handled.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.directory.base import Change, Entry
from bridge.directory.syntax import normalize_dn, split_rdn
from bridge.errors import InvalidFilter, InvalidPath, InvalidValue, Mutability, ScimError
from bridge.mapping.model import AttributeMap, ResourceMap
from bridge.scim import schema as sch
from bridge.scim.messages import Op, named
from bridge.scim.patch import apply
from bridge.scim.path import parse_path
from bridge.scim.projection import Projection
from bridge.scim.valuepath import Target, filter_paths, resolve_target
from bridge.translate import entry as tr
from bridge.translate.lookups import Lookups
from bridge.translate.members import Members, apply_members, plan_members

__all__ = [
    "Lookups",
    "PatchPlan",
    "patch_size",
    "plan",
    "read_attributes",
    "unique_candidates",
]


#: the working view of a resource: no member list (never read), no read-only groups
WORKING_VIEW = Projection(exclude=frozenset({("members", None), ("groups", None)}))
_ECHOED = {"schemas", "id", "meta"}  # read-only keys clients echo in value objects: ignored


@dataclass(frozen=True)
class PatchPlan:
    """What a PATCH does to one entry: one modify and, if the naming attribute changed, a
    rename."""

    changes: tuple[Change, ...]
    new_rdn_value: str | None = None
    #: the changes to send instead if the directory refuses ``changes`` because they would
    #: leave a groupOfNames without members (objectClassViolation): same, plus the placeholder
    when_emptied: tuple[Change, ...] | None = None


def read_attributes(rmap: ResourceMap) -> list[str]:
    """The LDAP attributes a PATCH reads: everything mapped except the member list and the
    read-only back-links (memberOf), which may be huge and are never needed to plan, and the
    write-only ones (``userPassword``: its hashes are never read, RFC 7643 §7 returned=never)."""
    skip = {
        a.ldap.lower()
        for a in rmap.attributes
        if a.attr in ("members", "groups") or not tr.readable(a)
    }
    wanted = tr.ldap_attributes(rmap, WORKING_VIEW) + [
        a.ldap for a in rmap.attributes if a.attr not in ("members", "groups")
    ]
    return [x for x in dict.fromkeys(wanted) if x.lower() not in skip]


def patch_size(body: Any) -> int:
    """How much planning a PATCH body may take, cheaply: its operations plus the elements of
    the arrays in their values (one level into value objects).  A body not shaped as a PATCH
    counts 0 (the plan refuses it at once)."""
    raw = tr.ci_get(body, "Operations") if isinstance(body, Mapping) else None
    if not isinstance(raw, list):
        return 0
    size = len(raw)
    for o in raw:
        value = o.get("value") if isinstance(o, Mapping) else None
        inner = value.values() if isinstance(value, Mapping) else (value,)
        size += sum(len(v) for v in inner if isinstance(v, list))
    return size


# ---------------------------------------------------------------------------- the resource
@dataclass
class Work:
    """The resource being patched plus what the operations touched."""

    rmap: ResourceMap
    res: dict[str, Any]
    touched: set[tuple[str, str]] = field(default_factory=set)  # (schema, attr name)
    #: per multi-valued attribute, its value index across operations (scim.patch.apply)
    indexes: dict[tuple[str, str], Any] = field(default_factory=dict)

    def touch(self, t: Target) -> None:
        self.touched.add((t.schema, t.name))


def _check_writable(rmap: ResourceMap, t: Target, op: str) -> None:
    maps = rmap.maps_for(t.name, t.schema)
    mutability = t.defn.mutability
    if t.sub_def is not None and t.sub_def.mutability == "readOnly":
        mutability = "readOnly"
    if maps and not any(a.writable for a in maps):
        mutability = "readOnly"
    if mutability == "readOnly" or t.name in ("id", "meta"):
        raise Mutability(f"{t.name} is read-only")
    if op == "remove" and t.filter is None:
        required = [a for a in maps if a.required and (t.sub is None or a.sub == t.sub)]
        if required or (t.defn.required and not maps):
            raise Mutability(f"{t.name} is required and cannot be removed")


def _apply(work: Work, t: Target, op: str, value: Any, has_value: bool) -> None:
    _check_writable(work.rmap, t, op)
    work.touch(t)
    apply(work.res, work.rmap.schema, t, op, value, has_value, work.indexes)


def _copy(resource: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a rendered (JSON) resource: an orjson round trip is several times faster
    than copy.deepcopy; anything that is not plain JSON falls back to deepcopy unchanged."""
    try:
        return orjson.loads(orjson.dumps(resource, option=orjson.OPT_PASSTHROUGH_DATETIME))
    except TypeError:
        return copy.deepcopy(resource)


# ---------------------------------------------------------------------------- the plan
def plan(
    ops: Sequence[Op],
    rmap: ResourceMap,
    entry: Entry,
    current: dict[str, Any],
    lookups: Lookups,
    has_placeholder: bool | None = None,
) -> PatchPlan:
    """Validate and plan every operation of a PATCH (``ops``, parsed once by the caller with
    :func:`bridge.scim.patch.parse_ops`) against ``entry`` (read with :func:`read_attributes`)
    and ``current``, the resource rendered from it with :data:`WORKING_VIEW`; nothing is
    written here, and the directory is reached only through ``lookups``.
    ``has_placeholder``: whether the group holds its ``empty_member`` placeholder, when the
    caller learnt it with the find (None: asked through ``lookups`` when a member is added).
    Uniqueness of the changed values is the caller's to check (:func:`unique_candidates`)."""
    work = Work(rmap, _copy(current))
    members = Members()
    for o in ops:
        try:
            _run(lookups, rmap, entry, work, members, o)
        except ScimError as exc:
            raise named(o, exc) from None
    return _to_plan(lookups, rmap, entry, work, members, has_placeholder)


def _run(
    lookups: Lookups, rmap: ResourceMap, entry: Entry, work: Work, members: Members, o: Op
) -> None:
    if o.path is not None:
        if not o.path.attr.attr:  # a bare extension URN: its value is the extension object
            if o.op == "remove" or (o.op == "replace" and o.value is None):
                _remove_extension(work, o.path.attr.schema or "")
                return
            if o.value is None:
                _remove_extension(work, o.path.attr.schema or "", check_only=True)
                return  # add null: nothing to add (RFC 7643 §2.5)
            if not isinstance(o.value, Mapping):
                raise InvalidValue("the value of an extension schema path must be an object")
            _run_object(lookups, rmap, entry, work, members, o, {o.path.attr.schema or "": o.value})
            return
        _run_target(
            lookups,
            rmap,
            entry,
            work,
            members,
            o,
            resolve_target(rmap.schemas, o.path, rmap.name),
            o.value,
        )
        return
    assert isinstance(o.value, Mapping)
    _run_object(lookups, rmap, entry, work, members, o, o.value)


def _remove_extension(work: Work, urn: str, *, check_only: bool = False) -> None:
    schema = sch.canonical_schema(urn)
    if schema is None or schema not in work.rmap.schemas:
        raise InvalidPath(f"schema {urn} is not used by {work.rmap.name}")
    if check_only:
        return
    for a in work.rmap.attributes:
        if a.schema == schema:
            t = Target(schema, a.parent, None, None)
            _apply(work, t, "remove", None, False)


def _run_object(
    lookups: Lookups,
    rmap: ResourceMap,
    entry: Entry,
    work: Work,
    members: Members,
    o: Op,
    value: Mapping[str, Any],
) -> None:
    """A path-less add/replace: each key of the value object is an operation of its own
    (RFC 7644 §3.5.2.1/.3).  Keys may be attribute names, extension URNs with an object,
    URN-qualified names or dotted/filtered paths - Entra ID sends 'name.givenName' and
    'urn:...:enterprise:2.0:User:manager' keys; Okta deactivates with {"active": false}."""
    for key, v in value.items():
        if not isinstance(key, str):
            raise InvalidPath(f"{key!r} is not an attribute name")
        if key.lower() in _ECHOED:
            continue  # Okta echoes id/meta/schemas: read-only, ignored
        ext = sch.canonical_schema(key)
        if ext is not None:
            if ext not in rmap.schemas:
                raise InvalidPath(f"schema {key} is not used by {rmap.name}")
            if not isinstance(v, Mapping):
                raise InvalidValue(f"{key} must be an object of extension attributes")
            for k2, v2 in v.items():
                if not isinstance(k2, str):
                    raise InvalidPath(f"{k2!r} is not an attribute name")
                if k2.lower() == "schemas":
                    # Entra ID (and clients that copy a GET's extension object) put a
                    # "schemas" list inside the extension object: not an attribute, ignored.
                    continue
                _run_target(
                    lookups,
                    rmap,
                    entry,
                    work,
                    members,
                    o,
                    resolve_target(rmap.schemas, parse_path(f"{ext}:{k2}"), rmap.name),
                    v2,
                )
            continue
        t = resolve_target(rmap.schemas, parse_path(key), rmap.name)
        _run_target(lookups, rmap, entry, work, members, o, t, v)


def _run_target(
    lookups: Lookups,
    rmap: ResourceMap,
    entry: Entry,
    work: Work,
    members: Members,
    o: Op,
    t: Target,
    value: Any,
) -> None:
    if t.filter is not None:
        _check_filter_shown(rmap, t)
    op = _effective_op(o.op, t, value)
    if op is None:
        return
    has_value = o.has_value if op == o.op else False  # a null turned removal removes all
    if t.name == "members" and t.schema == rmap.schema and rmap.member_map is not None:
        _check_writable(rmap, t, "add")
        apply_members(
            lookups, rmap, entry, members, t, Op(o.index, op, None, None, value, has_value)
        )
        return
    _apply(work, t, op, value, has_value)


def _effective_op(op: str, t: Target, value: Any) -> str | None:
    """RFC 7643 §2.5: null is "unassigned".  ``replace`` with null removes the target (so a
    required attribute refuses it, as a remove does); ``add`` with null adds nothing (None:
    skip).  A ``replace`` of a single string value with ``""`` is a removal too: Entra ID's
    SCIM validator (SCIM_Null_Update) clears an attribute with ``""`` and then ``null`` and
    expects the same outcome from both."""
    if op == "remove":
        return op
    if value is None:
        return "remove" if op == "replace" else None
    single = (t.sub_def or t.defn) if t.filter is None else None
    if op == "replace" and value == "" and single is not None and not single.multi_valued:
        return "remove" if single.type == "string" else op
    return op


def _check_filter_shown(rmap: ResourceMap, t: Target) -> None:
    """A PATCH value filter may not test a never-returned sub-attribute (RFC 7643 §7): the
    outcome of a filtered operation would tell its value (400 invalidFilter naming it)."""
    assert t.filter is not None
    hidden = {
        (a.sub or "value").lower(): a.path
        for a in rmap.maps_for(t.name, t.schema)
        if not tr.readable(a)
    }
    for p in filter_paths(t.filter):
        if p.attr.lower() in hidden:
            raise InvalidFilter(
                f"filter attribute {t.name}.{p.attr} is never returned: it cannot be filtered"
            )


def _to_plan(
    lookups: Lookups,
    rmap: ResourceMap,
    entry: Entry,
    work: Work,
    members: Members,
    has_placeholder: bool | None,
) -> PatchPlan:
    tr.check_required(rmap, work.res)
    touched = _touched_maps(rmap, work.touched)
    refs = {
        path: ids
        for path, ids in tr.reference_ids(rmap, work.res).items()
        if any(a.path == path for a in touched)
    }
    ref_dns: dict[str, str] = {}
    for path, ids in refs.items():
        amap = next(a for a in rmap.attributes if a.path == path)
        ref_dns.update(lookups.resolve_ids(ids, amap.to, amap.attr))
    new = _encode(rmap, touched, work.res, ref_dns, entry)
    new_rdn: str | None = None
    _attr, old_rdn, _parent = split_rdn(entry.dn)
    if any(a.path.lower() == rmap.rdn.source.lower() for a in touched):
        value = tr.rdn_value(rmap, work.res)
        if value != old_rdn:
            new_rdn = value
    changes: list[Change] = []
    for ldap_attr in dict.fromkeys(a.ldap for a in touched if a.writable):
        if a_is_member(rmap, ldap_attr):
            continue
        if new_rdn is not None and ldap_attr.lower() == rmap.rdn.ldap.lower():
            continue  # the rename writes it
        maps = [a for a in rmap.attributes if a.ldap == ldap_attr and a.writable]
        a = maps[0]
        want = new.get(ldap_attr, [])
        have = list(entry.get(ldap_attr))
        if a.codec.keep_when_absent and not want:
            continue  # AD's userAccountControl cannot be removed: removing active is a no-op
        if not tr.readable(a):
            # never read, so never compared: set when given.  A password the operation left
            # without a value is cleared (a replace with no values of an absent attribute is a
            # no-op to LDAP, RFC 4511 §4.6); another never-returned attribute is not, since it
            # may only have been touched through its parent (an add to phoneNumbers must not
            # wipe a hidden mobile number it could not see)
            if want or a.codec.write_only:
                changes.append(Change("replace", ldap_attr, tuple(want)))
            continue
        if _same(have, want, a):
            continue
        if a.mutability == "immutable" and have:
            raise Mutability(f"{a.path} is immutable")
        changes.append(Change("replace", ldap_attr, tuple(want)))
    when_emptied = None
    if not members.empty:
        member_ops, emptied = plan_members(lookups, rmap, entry, members, has_placeholder)
        if emptied is not None:
            when_emptied = tuple(changes + emptied)
        changes += member_ops
    return PatchPlan(tuple(changes), new_rdn, when_emptied)


def unique_candidates(p: PatchPlan) -> dict[str, list[bytes]]:
    """The values a plan sets with a replace, by LDAP attribute: what the caller checks for
    uniqueness (RFC 7644 §3.12 409) of the attributes the mapping declares unique."""
    return {c.attr: list(c.values) for c in p.changes if c.op == "replace" and c.values}


def _encode(
    rmap: ResourceMap,
    maps: list[AttributeMap],
    resource: Mapping[str, Any],
    ref_dns: Mapping[str, str],
    entry: Entry,
) -> dict[str, list[bytes]]:
    """LDAP values of just ``maps`` for the new resource (as translate.entry.to_attributes,
    fallbacks included, but without encoding untouched references).  ``entry`` gives codecs
    such as ad-enabled the current value whose other bits they keep."""
    out: dict[str, list[bytes]] = {}
    for a in maps:
        if not a.writable:
            continue
        values = tr.scim_values(rmap, a, resource)
        for fb in a.fallback if not values else ():
            source = next(m for m in rmap.attributes if m.path.lower() == fb.lower())
            values = tr.scim_values(rmap, source, resource)[:1]
            if values:
                break
        if a.codec.absent is not None and not values:
            continue
        bucket = out.setdefault(a.ldap, [])
        seen = set(bucket)
        for e in tr.encode(a, values, ref_dns, list(entry.get(a.ldap))):
            if e not in seen:  # a set: a list scan per value was quadratic
                seen.add(e)
                bucket.append(e)
    return {k: v for k, v in out.items() if v}


def a_is_member(rmap: ResourceMap, ldap_attr: str) -> bool:
    m = rmap.member_map
    return m is not None and m.ldap.lower() == ldap_attr.lower()


def _touched_maps(rmap: ResourceMap, touched: set[tuple[str, str]]) -> list[AttributeMap]:
    """Mappings of the touched SCIM attributes, plus those that fall back to one of them
    (``sn`` is filled from userName when familyName is absent)."""
    direct = [a for a in rmap.attributes if (a.schema, a.attr) in touched]
    paths = {a.path.lower() for a in direct}
    extra = [
        a
        for a in rmap.attributes
        if a not in direct and any(fb.lower() in paths for fb in a.fallback)
    ]
    return [a for a in direct + extra if a.attr not in ("members", "groups")]


def _same(have: list[bytes], want: list[bytes], a: AttributeMap) -> bool:
    if a.codec.binary:
        return have == want
    if a.is_reference:
        return {normalize_dn(v.decode()) for v in have} == {normalize_dn(v.decode()) for v in want}
    return sorted(have) == sorted(want)  # a case-only change is a change the client asked for
