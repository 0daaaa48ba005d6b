#!/usr/bin/env python3
"""Every apt package a Dockerfile installs must exist in the Debian release it pins.

    python3 .ci/check_apt_packages.py [DOCKERFILE ...]   # default: Dockerfile deploy/*/Dockerfile

No container engine runs in CI, so a Dockerfile that names a package its base image's release
does not have (libldap-2.5-0 on Debian 13) would only fail at `docker build`.  The Dockerfiles
pin the release with ``ARG DEBIAN_RELEASE=<codename>``; this script must run on a machine of
that release (CI is Debian 12 bookworm) and asks ``apt-cache policy`` for a candidate version
of every package named after ``apt-get install`` (``${ARG}`` references take the ARG's
default).  Exit 1 with one line per missing package; 2 when it cannot check at all.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def arg_defaults(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        m = re.match(r"ARG\s+(\w+)=(\S+)", line, re.IGNORECASE)
        if m:
            out.setdefault(m.group(1), m.group(2).strip("\"'"))
    return out


def expand(word: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), word)


def apt_packages(lines: list[str], args: dict[str, str]) -> list[str]:
    packages: list[str] = []
    for line in lines:
        if not line.upper().startswith("RUN "):
            continue
        for command in re.split(r"&&|;|\|\|", line[4:]):
            words = command.split()
            if "apt-get" not in words or "install" not in words:
                continue
            for word in words[words.index("install") + 1 :]:
                if not word.startswith("-"):
                    packages.append(expand(word, args))
    return packages


def release() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return ""


def candidate(package: str) -> str | None:
    out = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    ).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    return m.group(1) if m and m.group(1) != "(none)" else None


def check(dockerfile: Path, here: str) -> list[str]:
    lines = logical_lines(dockerfile.read_text())
    args = arg_defaults(lines)
    pinned = args.get("DEBIAN_RELEASE")
    if not pinned:
        return [f"{dockerfile}: no ARG DEBIAN_RELEASE=<codename>: the Debian release is not pinned"]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    unpinned = [f for f in froms if "${DEBIAN_RELEASE}" not in f and pinned not in f]
    problems = [f"{dockerfile}: {f!r} does not use the pinned release" for f in unpinned]
    if pinned != here:
        raise SystemExit(
            f"{dockerfile}: pins Debian {pinned}, this machine is {here or 'unknown'}: "
            "cannot check its packages here"
        )
    packages = apt_packages(lines, args)
    if not packages:
        problems.append(f"{dockerfile}: found no apt-get install (the parser is out of date?)")
    for package in packages:
        if "$" in package:
            problems.append(f"{dockerfile}: {package}: an ARG without a default")
        elif candidate(package) is None:
            problems.append(f"{dockerfile}: package {package!r} does not exist in Debian {pinned}")
    return problems


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or [
        ROOT / "Dockerfile",
        *sorted(ROOT.glob("deploy/*/Dockerfile")),
    ]
    if candidate("ca-certificates") is None:
        print("apt-cache knows no packages: run apt-get update first", file=sys.stderr)
        return 2
    here = release()
    try:
        problems = [p for f in files for p in check(f, here)]
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        names = ", ".join(
            str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in files
        )
        print(f"apt packages OK in Debian {here}: {names}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
