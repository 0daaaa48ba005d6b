"""The mapping loader's plumbing: strict YAML (a duplicate key is an error, not the last one
wins) and the collector of problems, each located by its YAML path, so that ``check-mapping``
can report every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from bridge.errors import Problem
from bridge.mapping.codecs import CODECS, Codec


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (attribute mapped twice?)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def at(base: str, *parts: str | int) -> str:
    """Extend the YAML path ``base`` with keys/indexes: ``a.b``, ``a[0]``, ``a['x[y]']``."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][\w$-]*", part):
            out += ("." if out else "") + part
        else:
            out += f"[{part!r}]"
    return out


class Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def typed(self, value: Any, kind: type | tuple[type, ...], path: str, what: str) -> bool:
        if isinstance(value, kind) and not (
            kind is not bool and isinstance(value, bool) and kind is int
        ):
            return True
        self.add(path, f"expected {what}, got {type(value).__name__} {value!r}")
        return False

    def unknown(self, data: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.add(
                    at(path, str(key)) if path else str(key),
                    f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                )


def codec_of(value: Any, path: str, c: Collector, default: str = "string") -> Codec | None:
    name = default if value is None else value
    codec = CODECS.get(name) if isinstance(name, str) else None
    if codec is None:
        c.add(path, f"unknown type {name!r} (choose one of: {', '.join(sorted(CODECS))})")
    return codec
