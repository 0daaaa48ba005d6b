"""The embedded in-memory directory: an ldap3 MOCK_SYNC DIT that behaves like OpenLDAP.

ldap3's mock is lenient where real servers are strict (see the project's directory notes): it
stores duplicate values, applies half of a failing modify, overwrites on a rename collision,
deletes non-leaf entries, keeps no operational attributes and evaluates substring/NOT filters
loosely.  The bridge must behave identically on the embedded directory and on slapd, so this
client keeps the entries in the mock's DIT but performs every operation itself, with slapd's
semantics: atomic modifies, result codes 16/20/32/64/65/66/68, ``entryUUID``/``entryCSN``/
timestamps, ``memberOf`` and referential integrity (memberof + refint overlays), anchored
substring matching, server-side sort and VLV (filters and ordering: :mod:`embedded_match`).
Thread-safe through one lock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import ldap3
from ldap3.utils.ciDict import CaseInsensitiveDict

from bridge.directory.base import (
    OID_ASSERTION,
    OID_PAGED,
    OID_SORT,
    OID_VLV,
    Add,
    Capabilities,
    Change,
    Delete,
    Directory,
    Entry,
    Modify,
    Rename,
    Scope,
    Search,
    SearchResult,
    SortKey,
)
from bridge.directory.embedded_match import matches, norm_value, parse, sort_entries
from bridge.directory.syntax import dn_path, normalize_dn, parent_dn, split_rdn
from bridge.errors import DirectoryError

OPERATIONAL = (
    "entryuuid",
    "entrycsn",
    "createtimestamp",
    "modifytimestamp",
    "memberof",
    "entrydn",
    "creatorsname",
    "modifiersname",
    "structuralobjectclass",
    "pwdaccountlockedtime",
)
SINGLE_VALUED = {
    "displayname",
    "employeenumber",
    "preferredlanguage",
    "givenname_",
    "pwdaccountlockedtime",
    "employeetype_",
}
MUST = {
    "person": ("cn", "sn"),
    "organizationalperson": ("cn", "sn"),
    "inetorgperson": ("cn", "sn"),
    "groupofnames": ("cn", "member"),
    "groupofuniquenames": ("cn", "uniquemember"),
    "organizationalunit": ("ou",),
}
REFINT = ("member", "uniquemember", "manager", "owner", "seealso")


def _now() -> datetime:
    return datetime.now(UTC)


def _gt(ts: datetime) -> bytes:
    return ts.strftime("%Y%m%d%H%M%SZ").encode()


class EmbeddedDirectory(Directory):
    name = "embedded"

    def __init__(self, generated: Mapping[str, str] | None = None) -> None:
        """``generated``: attributes another directory generates itself, which this one then
        stamps too (the dry-run overlay standing in for 389 DS or AD): name -> ``uuid`` or
        ``guid`` (a new id on add) or ``counter`` (a new number on every write).  entryUUID
        and entryCSN are always stamped."""
        self._generated = {
            k.lower(): v for k, v in (generated or {}).items() if k.lower() not in OPERATIONAL
        }
        server = ldap3.Server("embedded", get_info=ldap3.NONE)
        self._conn = ldap3.Connection(server, client_strategy=ldap3.MOCK_SYNC)
        self._dit: CaseInsensitiveDict = self._conn.strategy.entries  # normalized dn -> entry
        self._dit.clear()
        self._lock = threading.RLock()
        self._csn = 0
        self.fail_next: dict[str, DirectoryError] = {}  # fault injection for tests

    @property
    def secure(self) -> bool:
        """In-process: nothing crosses a network, so nothing can be read on the way."""
        return True

    @property
    def capabilities(self) -> Capabilities:
        """Sort, VLV, paging and assertion, as slapd has them; no dereference, post-read or
        matched values (ldap3's mock has no controls): the service takes the path it takes
        with a directory without them, so the behaviour suites cover that path here."""
        ctrls = frozenset({OID_SORT, OID_VLV, OID_PAGED, OID_ASSERTION})
        return Capabilities(sort=True, vlv=True, paged=True, assertion=True, controls=ctrls)

    # ------------------------------------------------------------------ helpers
    def _injected(self, operation: str, dn: str) -> None:
        err = self.fail_next.pop(operation, None)
        if err is not None:
            raise DirectoryError(err.code, err.message, dn=dn, operation=operation)

    def _get(self, dn: str) -> dict[str, Any] | None:
        return self._dit.get(normalize_dn(dn))

    def _stamp(self, entry: dict[str, Any], created: bool = False) -> None:
        self._csn += 1
        now = _now()
        if created:
            entry["createtimestamp"] = [_gt(now)]
            entry["entryuuid"] = [str(uuid.uuid4()).encode()]
        entry["modifytimestamp"] = [_gt(now)]
        for name, kind in self._generated.items():
            if kind == "counter":
                old = entry.get(name) or [b""]
                entry[name] = [str(int(old[0]) + 1 if old[0].isdigit() else self._csn).encode()]
            elif created:
                new = uuid.uuid4()
                entry[name] = [new.bytes_le if kind == "guid" else str(new).encode()]
        entry["entrycsn"] = [
            now.strftime("%Y%m%d%H%M%S.%f").encode() + f"Z#{self._csn:06x}#000#000000".encode()
        ]

    @staticmethod
    def _to_entry(dn: str, attrs: Mapping[str, Any], wanted: Sequence[str]) -> Entry:
        want = {w.lower() for w in wanted}
        all_user = "*" in want or not want
        ops = "+" in want
        out: dict[str, list[bytes]] = {}
        for name, vals in attrs.items():
            if name.startswith("_"):
                continue
            operational = name in OPERATIONAL
            if name in want or (all_user and not operational) or (ops and operational):
                out[name] = list(vals)
        if "1.1" in want and len(want) == 1:
            out = {}
        return Entry(attrs["_dn"], out)

    def _check_schema(self, dn: str, entry: dict[str, Any], operation: str) -> None:
        classes = {v.decode().lower() for v in entry.get("objectclass", [])}
        for oc in classes:
            for must in MUST.get(oc, ()):
                if not entry.get(must):
                    raise DirectoryError(
                        "objectClassViolation",
                        f"object class '{oc}' requires attribute '{must}'",
                        dn=dn,
                        operation=operation,
                    )
        for name in SINGLE_VALUED:
            if len(entry.get(name, ())) > 1:
                raise DirectoryError(
                    "constraintViolation",
                    f"attribute '{name}' cannot have multiple values",
                    dn=dn,
                    operation=operation,
                )
        attr, value, _ = split_rdn(dn)
        if norm_value(attr.lower(), value.encode()) not in {
            norm_value(attr.lower(), v) for v in entry.get(attr.lower(), [])
        }:
            raise DirectoryError(
                "notAllowedOnRDN",
                f"the RDN value of '{attr}' must stay",
                dn=dn,
                operation=operation,
            )

    def _check_values(self, dn: str, attrs: Mapping[str, Sequence[bytes]], operation: str) -> None:
        for name, vals in attrs.items():
            keys = [norm_value(name.lower(), v) for v in vals]
            if len(set(keys)) != len(keys):
                raise DirectoryError(
                    "attributeOrValueExists",
                    f"duplicate value in '{name}'",
                    dn=dn,
                    operation=operation,
                )

    # ------------------------------------------------------------------ memberOf / refint
    def _member_of(self, target: str, group_dn: str, add: bool) -> None:
        entry = self._get(target)
        if entry is None:
            return
        vals = entry.setdefault("memberof", [])
        key = normalize_dn(group_dn)
        kept = [v for v in vals if normalize_dn(v.decode()) != key]
        if add:
            kept.append(group_dn.encode())
        entry["memberof"] = kept
        if not kept:
            del entry["memberof"]

    def _members(self, entry: Mapping[str, Any]) -> list[str]:
        return [v.decode() for name in ("member", "uniquemember") for v in entry.get(name, [])]

    def _refint(self, old_dn: str, new_dn: str | None) -> None:
        """refint overlay: rewrite (rename) or drop (delete) references to ``old_dn``."""
        old = normalize_dn(old_dn)
        for entry in self._dit.values():
            if not isinstance(entry, dict):
                continue
            for name in (*REFINT, "memberof"):
                vals = entry.get(name)
                if not vals or not any(normalize_dn(v.decode()) == old for v in vals):
                    continue
                kept = [v for v in vals if normalize_dn(v.decode()) != old]
                if new_dn is not None:
                    kept.append(new_dn.encode())
                if kept:
                    entry[name] = kept
                elif name == "member" and "groupofnames" in _classes(entry):
                    entry[name] = vals  # slapd refuses to empty a groupOfNames; keep as slapd does
                else:
                    del entry[name]

    # ------------------------------------------------------------------ writes
    def run_add(self, op: Add) -> Entry | None:
        """As slapd; ``post_read`` is ignored (no post-read control here): returns None."""
        dn, attributes = op.dn, op.attributes
        with self._lock:
            self._injected("add", dn)
            key = normalize_dn(dn)
            if key in self._dit:
                raise DirectoryError("entryAlreadyExists", "", dn=dn, operation="add")
            parent = parent_dn(dn)
            if parent and normalize_dn(parent) not in self._dit and self._dit:
                raise DirectoryError(
                    "noSuchObject", "parent does not exist", dn=dn, operation="add"
                )
            self._check_values(dn, attributes, "add")
            entry: dict[str, Any] = {
                k.lower(): [bytes(v) for v in vals] for k, vals in attributes.items() if vals
            }
            for op_attr in OPERATIONAL:
                if op_attr in entry and op_attr != "pwdaccountlockedtime":
                    raise DirectoryError(
                        "constraintViolation", f"{op_attr} is read-only", dn=dn, operation="add"
                    )
            self._check_schema(dn, entry, "add")
            entry["_dn"] = dn
            entry["_path"] = dn_path(dn)
            entry["entrydn"] = [dn.encode()]
            self._stamp(entry, created=True)
            self._dit[key] = entry
            for member in self._members(entry):
                self._member_of(member, dn, add=True)
        return None

    def seed(self, dn: str, attributes: Mapping[str, Sequence[bytes | str]]) -> None:
        """Add an entry during start-up (values may be str)."""
        self.add(
            dn,
            {
                k: [v.encode() if isinstance(v, str) else v for v in vals]
                for k, vals in attributes.items()
            },
        )

    def restore(self, dn: str, attributes: Mapping[str, Sequence[bytes]]) -> None:
        """Insert a copy of an entry read from another directory verbatim, operational
        attributes (entryUUID, timestamps, memberOf) included; replaces any entry at ``dn``.
        Used by the dry-run overlay (directory/dryrun.py)."""
        with self._lock:
            entry: dict[str, Any] = {
                k.lower(): [bytes(v) for v in vals] for k, vals in attributes.items() if vals
            }
            entry["_dn"] = dn
            entry["_path"] = dn_path(dn)
            entry.setdefault("entrydn", [dn.encode()])
            self._dit[normalize_dn(dn)] = entry

    def run_modify(self, op: Modify) -> Entry | None:
        """As slapd; ``post_read`` is ignored (no post-read control here): returns None."""
        dn, changes, assertion = op.dn, op.changes, op.assertion
        with self._lock:
            self._injected("modify", dn)
            entry = self._get(dn)
            if entry is None:
                raise DirectoryError("noSuchObject", "", dn=dn, operation="modify")
            if assertion and not matches(entry, parse(assertion)):
                raise DirectoryError("assertionFailed", "", dn=dn, operation="modify")
            work = {k: list(v) if isinstance(v, list) else v for k, v in entry.items()}
            for ch in changes:
                self._apply(dn, work, ch)
            self._check_schema(dn, work, "modify")
            before = {normalize_dn(m): m for m in self._members(entry)}
            after = {normalize_dn(m): m for m in self._members(work)}
            self._stamp(work)
            entry.clear()
            entry.update(work)
            for k in before.keys() - after.keys():
                self._member_of(before[k], entry["_dn"], add=False)
            for k in after.keys() - before.keys():
                self._member_of(after[k], entry["_dn"], add=True)
        return None

    def _apply(self, dn: str, work: dict[str, Any], ch: Change) -> None:
        name = ch.attr.lower()
        if name in OPERATIONAL and name != "pwdaccountlockedtime":
            raise DirectoryError(
                "constraintViolation", f"{ch.attr} is read-only", dn=dn, operation="modify"
            )
        self._check_values(dn, {name: ch.values}, "modify")
        current: list[bytes] = work.get(name, [])
        keys = {norm_value(name, v) for v in current}
        if ch.op == "add":
            for v in ch.values:
                if norm_value(name, v) in keys:
                    raise DirectoryError(
                        "attributeOrValueExists",
                        f"{ch.attr}: value already present",
                        dn=dn,
                        operation="modify",
                    )
            work[name] = current + list(ch.values)
        elif ch.op == "delete":
            if not ch.values:
                if not current:
                    raise DirectoryError("noSuchAttribute", ch.attr, dn=dn, operation="modify")
                work.pop(name, None)
                return
            drop = {norm_value(name, v) for v in ch.values}
            if not drop <= keys:
                raise DirectoryError(
                    "noSuchAttribute", f"{ch.attr}: value not present", dn=dn, operation="modify"
                )
            kept = [v for v in current if norm_value(name, v) not in drop]
            if kept:
                work[name] = kept
            else:
                work.pop(name, None)
        elif ch.values:
            work[name] = list(ch.values)
        else:
            work.pop(name, None)

    def run_rename(self, op: Rename) -> str:
        dn, new_rdn, new_superior, assertion = op.dn, op.new_rdn, op.new_superior, op.assertion
        with self._lock:
            self._injected("rename", dn)
            entry = self._get(dn)
            if entry is None:
                raise DirectoryError("noSuchObject", "", dn=dn, operation="rename")
            if assertion and not matches(entry, parse(assertion)):
                raise DirectoryError("assertionFailed", "", dn=dn, operation="rename")
            parent = new_superior or parent_dn(dn)
            new_dn = f"{new_rdn},{parent}" if parent else new_rdn
            new_key = normalize_dn(new_dn)
            old_key = normalize_dn(dn)
            if new_key in self._dit and new_key != old_key:
                raise DirectoryError("entryAlreadyExists", "", dn=new_dn, operation="rename")
            if new_superior and normalize_dn(new_superior) not in self._dit:
                raise DirectoryError(
                    "noSuchObject", "new superior does not exist", dn=dn, operation="rename"
                )
            if self._children(dn):
                raise DirectoryError("notAllowedOnNonLeaf", "", dn=dn, operation="rename")
            old_attr, old_value, _ = split_rdn(dn)
            new_attr, new_value, _ = split_rdn(new_dn)
            work = dict(entry)
            olds = work.get(old_attr.lower(), [])
            work[old_attr.lower()] = [
                v
                for v in olds
                if norm_value(old_attr.lower(), v)
                != norm_value(old_attr.lower(), old_value.encode())
            ]
            if not work[old_attr.lower()]:
                del work[old_attr.lower()]
            vals = work.get(new_attr.lower(), [])
            if norm_value(new_attr.lower(), new_value.encode()) not in {
                norm_value(new_attr.lower(), v) for v in vals
            }:
                work[new_attr.lower()] = [*vals, new_value.encode()]
            work["_dn"] = new_dn
            work["_path"] = dn_path(new_dn)
            work["entrydn"] = [new_dn.encode()]
            self._check_schema(new_dn, work, "rename")
            self._stamp(work)
            del self._dit[old_key]
            self._dit[new_key] = work
            self._refint(dn, new_dn)
            return new_dn

    def _children(self, dn: str) -> bool:
        path = dn_path(dn)
        n = len(path)
        return any(
            isinstance(e, dict) and len(e.get("_path", ())) == n + 1 and e["_path"][:n] == path
            for e in self._dit.values()
        )

    def run_delete(self, op: Delete) -> None:
        dn, assertion = op.dn, op.assertion
        with self._lock:
            self._injected("delete", dn)
            key = normalize_dn(dn)
            entry = self._dit.get(key)
            if entry is None:
                raise DirectoryError("noSuchObject", "", dn=dn, operation="delete")
            if assertion and not matches(entry, parse(assertion)):
                raise DirectoryError("assertionFailed", "", dn=dn, operation="delete")
            if self._children(dn):
                raise DirectoryError("notAllowedOnNonLeaf", "", dn=dn, operation="delete")
            for member in self._members(entry):
                self._member_of(member, entry["_dn"], add=False)
            del self._dit[key]
            self._refint(dn, None)

    # ------------------------------------------------------------------ reads
    def _scope(self, base: str, scope: Scope) -> Iterator[dict[str, Any]]:
        bkey = normalize_dn(base)
        if scope == "base":
            found = self._dit.get(bkey)
            if found is not None:
                yield found
            return
        if bkey and bkey not in self._dit:
            raise DirectoryError("noSuchObject", "base does not exist", dn=base, operation="search")
        bpath = dn_path(base) if bkey else ()
        n = len(bpath)
        for entry in list(self._dit.values()):
            if not isinstance(entry, dict) or "_dn" not in entry:
                continue
            path = entry["_path"]
            if path[:n] != bpath or (scope == "one" and len(path) != n + 1):
                continue
            yield entry

    def run(self, search: Search) -> SearchResult:
        base, sort, window = search.base, search.sort, search.window
        if search.matched_values:  # a server without the (critical) control answers so
            raise DirectoryError(
                "unavailableCriticalExtension", "no matched values", dn=base, operation="search"
            )
        with self._lock:
            self._injected("search", base)
            node = parse(search.filter)
            matched = [e for e in self._scope(base, search.scope) if matches(e, node)]
            if sort or window:
                matched = sort_entries(matched, sort or (SortKey("cn"),))
            total = len(matched)
            if window is not None:
                start = max(window.offset, 1) - 1
                matched = matched[start : start + window.count]
            elif search.size_limit:
                matched = matched[: search.size_limit]
            out = [self._to_entry(e["_dn"], e, search.attributes) for e in matched]
        return SearchResult(out, total if window is not None else None)

    def stream(self, search: Search) -> Iterator[Entry]:
        yield from self.run(search).entries

    def check(self) -> None:
        return None


def _classes(entry: Mapping[str, Any]) -> set[str]:
    return {v.decode().lower() for v in entry.get("objectclass", [])}
