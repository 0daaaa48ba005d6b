"""SCIM request messages, parsed and checked (RFC 7644 §3.5.2): the PatchOp body as a list of
:class:`Op`.  What an operation does to a resource is :mod:`bridge.scim.patch`.

Tolerated IdP shapes are commented where they are handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import InvalidPath, InvalidSyntax, InvalidValue, NoTarget, ScimError
from bridge.scim import schema as sch
from bridge.scim.path import PatchPath, parse_path

MAX_OPERATIONS = 1000
OPS = ("add", "replace", "remove")


# ---------------------------------------------------------------------------- operations
@dataclass(frozen=True)
class Op:
    index: int
    op: str
    path_text: str | None
    path: PatchPath | None
    value: Any
    has_value: bool

    def label(self) -> str:
        text = self.path_text
        if text is not None and len(text) > 80:
            text = text[:77] + "..."
        where = f" {text!r}" if text is not None else ""
        return f"Operations[{self.index}] ({self.op}{where})"


def parse_ops(body: Mapping[str, Any]) -> list[Op]:
    """RFC 7644 §3.5.2: ``schemas`` names PatchOp and ``Operations`` is a non-empty array."""
    schemas = sch.ci_get(body, "schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(s, str) and s.lower() == sch.PATCH_OP.lower() for s in schemas
    ):
        raise InvalidSyntax(f"a PATCH body must have schemas [{sch.PATCH_OP!r}]")
    raw_ops = sch.ci_get(body, "Operations")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise InvalidSyntax("a PATCH body needs a non-empty 'Operations' array")
    if len(raw_ops) > MAX_OPERATIONS:
        raise InvalidSyntax(f"at most {MAX_OPERATIONS} operations per PATCH")
    return [_parse_op(i, raw) for i, raw in enumerate(raw_ops)]


def _parse_op(index: int, raw: Any) -> Op:
    if not isinstance(raw, Mapping):
        raise InvalidSyntax(f"Operations[{index}] must be an object with 'op'")
    name = sch.ci_get(raw, "op")
    # Entra ID (apps without the aadOptscim062020 flag) sends "Add"/"Replace"/"Remove".
    op = name.strip().lower() if isinstance(name, str) else None
    if op not in OPS:
        raise InvalidSyntax(
            f"Operations[{index}]: unknown op {name!r} (expected add, replace or remove)"
        )
    path_text = sch.ci_get(raw, "path")
    if path_text is not None and not isinstance(path_text, str):
        raise InvalidPath(f"Operations[{index}] ({op}): path must be a string")
    if isinstance(path_text, str) and not path_text.strip():
        path_text = None  # some clients send "path": "" for the resource itself
    has_value = any(isinstance(k, str) and k.lower() == "value" for k in raw)
    value = sch.ci_get(raw, "value")
    o = Op(index, op, path_text, None, value, has_value)
    path: PatchPath | None = None
    if path_text is not None:
        try:
            path = parse_path(path_text)
        except ScimError as exc:
            raise named(o, exc) from None
    o = Op(index, op, path_text, path, value, has_value)
    if op != "remove" and not has_value:
        raise InvalidValue(f"{o.label()}: a 'value' is required")
    # "value": null is kept (RFC 7643 §2.5: null is unassigned): with a path, a replace removes
    # the attribute and an add adds nothing (translate.patch); Entra ID's validator sends it.
    if op == "remove" and path is None:
        raise NoTarget(f"{o.label()}: remove needs a 'path'")
    if path is None and not isinstance(value, Mapping):
        raise InvalidValue(f"{o.label()}: without a path the value must be an object")
    return o


def named(op: Op, exc: ScimError) -> ScimError:
    """The same error, its detail prefixed with the operation it belongs to."""
    if not exc.detail.startswith("Operations["):
        exc.detail = f"{op.label()}: {exc.detail}"
        exc.args = (exc.detail,)
    return exc
