"""The docs check: the documentation stays true to the code.

- every ``BRIDGE_*`` name the docs, mappings and deploy files mention is one the code reads,
  and every name the bridge reads is a row of docs/configuration.md, whose defaults are the
  code's;
- every relative link in a Markdown file resolves, ``#anchor`` included; every README section
  and every ``docs/`` page that a comment in the code, the mappings or the deploy files names
  exists;
- the README's quickstart runs as written: ``serve`` on the embedded directory prints the banner
  the README shows, and the curl walk-through answers as its comments say.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from bridge.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
NAME = re.compile(r"(?<![A-Za-z0-9_])BRIDGE_[A-Z0-9_<>]*[A-Z0-9>]")
PLACEHOLDER = "<NAME>"


# --------------------------------------------------------------------------- BRIDGE_* names


class _Recording(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.add(key)
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def settings_read() -> set[str]:
    """The names ``Settings.from_env`` reads, found by running it: one plain token and one
    named ``<NAME>``, so that the token variants (``_FILE``, ``_READONLY``) are read too."""
    env = _Recording({"BRIDGE_TOKEN": "a-token", f"BRIDGE_TOKEN_{PLACEHOLDER}": "another"})
    Settings.from_env(env)
    return {name for name in env.read if name.startswith("BRIDGE_")}


def literal_names(root: Path) -> set[str]:
    """String literals that are a whole ``BRIDGE_*`` name, in every module under ``root``:
    a setting read anywhere else than settings.py shows up here."""
    names: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"BRIDGE_[A-Z0-9_]*[A-Z0-9]", node.value)
            ):
                names.add(node.value)
    return names


def code_names() -> set[str]:
    return settings_read() | literal_names(ROOT / "bridge")


def configuration_rows() -> list[tuple[list[str], str]]:
    """(names, default cell) of each row of the settings table in docs/configuration.md."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and NAME.search(cells[0]):
            rows.append((re.findall(r"`(BRIDGE_[^`]+)`", cells[0]), cells[1]))
    return rows


def documented_names(path: Path) -> set[str]:
    return set(NAME.findall(path.read_text(encoding="utf-8")))


def doc_files() -> list[Path]:
    """README, CONTRIBUTING, docs/, bench/README.md, the mappings and the deploy files."""
    files = [*markdown_files(), *(ROOT / "mappings").glob("*.yaml"), ROOT / "Dockerfile"]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    return files


def test_configuration_lists_exactly_the_settings_the_code_reads() -> None:
    rows = configuration_rows()
    table = [name for names, _ in rows for name in names]
    assert len(table) == len(set(table)), "a variable has two rows in docs/configuration.md"
    code = code_names()
    missing = sorted(code - set(table))
    assert not missing, f"read by the code, missing from docs/configuration.md: {missing}"
    extra = sorted(set(table) - code)
    assert not extra, f"in docs/configuration.md, but the code never reads: {extra}"


def test_configuration_defaults_are_the_codes() -> None:
    """Setting a variable to its documented default changes nothing."""
    baseline = Settings.from_env({})
    checked = 0
    for names, default in configuration_rows():
        literal = re.fullmatch(r"`([^`]+)`", default)
        if literal is None:
            continue
        for name in names:
            assert Settings.from_env({name: literal.group(1)}) == baseline, (
                f"{name}: docs/configuration.md says the default is {literal.group(1)}"
            )
            checked += 1
    assert checked >= 25


def name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(name).replace(re.escape(PLACEHOLDER), "(?:<NAME>|[A-Z0-9_]+)"))


def test_every_documented_bridge_name_is_read_by_the_code() -> None:
    # a test or bench knob (e.g. BRIDGE_FUZZ_EXAMPLES, in CONTRIBUTING.md) counts as read
    known = code_names() | literal_names(ROOT / "tests") | literal_names(ROOT / "bench")
    patterns = [name_pattern(name) for name in known]
    unknown = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in doc_files()
        for name in documented_names(path)
        if not any(p.fullmatch(name) for p in patterns)
    }
    assert not unknown, f"documented, but no code reads them: {sorted(unknown)}"


# --------------------------------------------------------------------------- the mapping reference


def defined(name: str) -> Any:
    """The module-level object ``name`` of whichever bridge module assigns it (found by source,
    so that moving a module does not break the check)."""
    import importlib

    for path in sorted((ROOT / "bridge").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = (
                node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            )
            if any(isinstance(x, ast.Name) and x.id == name for x in targets):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                return getattr(importlib.import_module(module), name)
    raise AssertionError(f"no bridge module defines {name}")


def test_mapping_reference_names_every_key_codec_and_dialect() -> None:
    text = (ROOT / "docs" / "mapping.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([^`\s]+)`", text))
    names = {
        "top-level key": defined("_TOP_KEYS"),
        "resource key": defined("_RES_KEYS"),
        "attribute key": defined("ATTR_KEYS"),
        "codec": defined("CODECS"),
        "dialect": defined("DIALECTS"),
    }
    missing = [f"{kind} {n}" for kind, ns in names.items() for n in ns if n not in documented]
    assert not missing, f"not in docs/mapping.md: {missing}"


# --------------------------------------------------------------------------- links


def markdown_files() -> list[Path]:
    return sorted(
        p
        for p in ROOT.rglob("*.md")
        if not any(
            part.startswith(".") or part in ("build", "dist") for part in p.parts[len(ROOT.parts) :]
        )
    )


def prose(text: str) -> str:
    """Markdown without fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path: Path) -> list[str]:
    return [
        m.group(1)
        for m in re.finditer(
            r"^#{1,6}\s+(.+?)\s*#*$", prose(path.read_text(encoding="utf-8")), re.M
        )
    ]


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(path):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def links(path: Path) -> Iterator[str]:
    text = prose(path.read_text(encoding="utf-8"))
    for m in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text):
        yield m.group(1)
    for m in re.finditer(r"^\s*\[[^\]]+\]:\s*(\S+)", text, re.M):
        yield m.group(1)


def broken_link(source: Path, target: str) -> str | None:
    if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
        return None  # https:, mailto:
    file_part, _, anchor = target.partition("#")
    dest = (source.parent / file_part).resolve() if file_part else source
    if not dest.exists():
        return f"{target}: no such file"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}"
    return None


def test_markdown_files_are_found() -> None:
    found = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    for required in ("README.md", "CONTRIBUTING.md", "docs/configuration.md", "bench/README.md"):
        assert required in found


def test_every_relative_link_resolves() -> None:
    broken = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in markdown_files()
        for target in links(path)
        if (problem := broken_link(path, target))
    ]
    assert not broken, "\n".join(broken)


def commented_files() -> list[Path]:
    """Files whose comments may send a reader to the README or to docs/."""
    files = [*(ROOT / "bridge").rglob("*.py"), *(ROOT / "mappings").glob("*.yaml")]
    files += [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    return [*files, ROOT / "Dockerfile", ROOT / ".ci" / "run", ROOT / "pyproject.toml"]


def sections_named(text: str) -> Iterator[tuple[str, str]]:
    """(page, section) for each section a comment names: README "X", README.md "X", "Y",
    README section "X", docs/mapping.md "Codecs"."""
    pattern = r'(README(?:\.md)?|docs/[\w/.-]+\.md)(?: section)?((?:,?\s*(?:#\s*)?"[^"\n]+")+)'
    for m in re.finditer(pattern, text):
        page = "README.md" if m.group(1).startswith("README") else m.group(1)
        for section in re.findall(r'"([^"\n]+)"', m.group(2)):
            yield page, section


def test_sections_and_docs_pages_named_in_comments_exist() -> None:
    broken = []
    for path in commented_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        for page, section in sections_named(text):
            target = ROOT / page
            if not target.exists() or section not in headings(target):
                broken.append(f"{where}: {page} has no section {section!r}")
        for page in re.findall(r"\bdocs/[\w./-]*[\w/]", text):
            if not ((ROOT / page).exists() or (ROOT / f"{page}.md").exists()):
                broken.append(f"{where}: {page}")
    assert not broken, "\n".join(broken)


def test_section_reference_parser() -> None:
    text = (
        '# README.md "Operations",\n# "Container".  see README "Mapping reference", README '
        'section "Tests" and docs/mapping.md "Codecs"'
    )
    assert list(sections_named(text)) == [
        ("README.md", "Operations"),
        ("README.md", "Container"),
        ("README.md", "Mapping reference"),
        ("README.md", "Tests"),
        ("docs/mapping.md", "Codecs"),
    ]


def test_python_objects_named_in_the_docs_exist() -> None:
    """``bridge.web.asgi:app`` and the like, which users pass to uvicorn, can be imported."""
    import importlib

    missing = []
    for path in markdown_files():
        for module, attr in re.findall(
            r"\b(bridge(?:\.\w+)+):([A-Za-z_]\w*)", path.read_text(encoding="utf-8")
        ):
            try:
                getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                missing.append(f"{path.relative_to(ROOT)}: {module}:{attr}")
    assert not missing, missing


def test_readme_gives_the_test_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    marker = next(i for i, line in enumerate(ci) if 'README.md "Tests"' in line)
    command = ci[marker + 1].strip()
    tests = README.read_text(encoding="utf-8").split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    assert f"`{command}`" in tests


# --------------------------------------------------------------------------- the quickstart


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def fenced_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```[^\n]*\n(.*?)^```$", text, re.M | re.S)]


def shell_commands(block: str) -> list[str]:
    """The commands of a shell block: comments dropped, continuation lines and quoted
    multi-line arguments joined."""
    commands: list[str] = []
    pending = ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:
            continue  # a quote spans lines
        if words:
            commands.append(pending)
        pending = ""
    assert not pending, f"unterminated command: {pending!r}"
    return commands


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console_script() -> str:
    script = Path(sys.executable).parent / "scim-ldap-bridge"
    return str(script) if script.exists() else f"{sys.executable} -m bridge.cli"


def _forward(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, list[str], subprocess.Popen[str]]]:
    """The quickstart's first command, ``.venv/bin/scim-ldap-bridge serve``, as a user runs it
    (from the venv this suite runs in, on a free port): its banner lines, once it answers."""
    (install,) = [
        c for c in shell_commands(fenced_blocks(readme_section("Quickstart"))[0]) if " serve" in c
    ]
    parts = [p.strip() for p in install.split("&&")]
    assert parts[0] == "python3 -m venv .venv" and parts[1].startswith(".venv/bin/pip install -e .")
    assert parts[2] == ".venv/bin/scim-ldap-bridge serve"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    proc = subprocess.Popen(
        [*shlex.split(console_script()), "serve", "--port", str(port)],
        cwd=tmp_path_factory.mktemp(
            "demo"
        ),  # works outside the repository too (the packaged mapping)
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner: list[str] = []
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_forward, args=(proc.stdout, lines), daemon=True).start()
        while not any(line.startswith("bearer token") for line in banner):
            try:
                banner.append(lines.get(timeout=60).rstrip("\n"))
            except queue.Empty:
                raise AssertionError(f"serve ({proc.poll()}) printed no token: {banner}") from None
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve never answered"
                time.sleep(0.1)
        yield url, banner, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_curl(command: str, client: httpx.Client) -> httpx.Response:
    """One curl line of the walk-through, sent with httpx (curl may be missing)."""
    words = shlex.split(command, comments=True)
    assert words[0] == "curl", command
    method, headers, body, url = "GET", {}, None, None
    args = iter(words[1:])
    for word in args:
        if word == "-s":
            continue
        if word == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-X":
            method = next(args)
        elif word == "-d":
            body = next(args)
        else:
            assert url is None and word.startswith("http"), f"unexpected curl word {word!r}"
            url = word
    assert url is not None, command
    return client.request(method, url, headers=headers, content=body)


def test_quickstart_demo_runs_as_written(
    demo: tuple[str, list[str], subprocess.Popen[str]],
) -> None:
    url, banner, _proc = demo
    blocks = fenced_blocks(readme_section("Quickstart"))
    assert len(blocks) == 3, "the quickstart: commands, serve's banner, the curl walk-through"
    assert any(c.strip() == "bash .ci/run" for c in shell_commands(blocks[0]))  # the whole suite
    assert (ROOT / ".ci" / "run").is_file()

    # the banner serve printed is the one the README shows, but for the port and the token
    shown = blocks[1].splitlines()
    token = banner[-1].rsplit(": ", 1)[1]
    port = url.rsplit(":", 1)[1]
    printed = [line.replace(f":{port}/", ":8080/").replace(token, "<token>") for line in banner]
    assert printed == [
        re.sub(r": \S+$", ": <token>", line) if line.startswith("bearer") else line
        for line in shown
    ]

    walk = shell_commands(blocks[2])
    setup, curls = walk[0], walk[1:]
    assert setup == 'B=http://127.0.0.1:8080/scim/v2; H="Authorization: Bearer $T"'
    values = {"$B": f"{url}/scim/v2", "$H": f"Authorization: Bearer {token}", "$T": token}
    created = ""
    with httpx.Client(timeout=30) as client:
        for shown_command in curls:
            command = shown_command
            for var, value in values.items():
                command = command.replace(var, value)
            command = command.replace("<id>", created)
            response = run_curl(command, client)
            said = re.search(r"->\s*(\d{3})", command.rsplit("'", 1)[-1])
            expected = int(said.group(1)) if said else 200
            assert response.status_code == expected, (shown_command, response.text)
            if response.status_code == 201:
                created = response.json()["id"]
            if response.content:
                json.loads(response.content)  # a SCIM body, not an HTML error page
    assert created, "the walk-through creates a user and uses its id"


def test_quickstart_find_sees_the_demo_user(
    demo: tuple[str, list[str], subprocess.Popen[str]],
) -> None:
    """The walk-through's ``find`` looks up a user the demo data holds."""
    url, banner, _proc = demo
    token = banner[-1].rsplit(": ", 1)[1]
    line = next(
        c for c in shell_commands(fenced_blocks(readme_section("Quickstart"))[2]) if "filter=" in c
    )
    query = re.search(r'"\$B(/Users\?filter=[^"]+)"', line)
    assert query is not None
    found = httpx.get(
        f"{url}/scim/v2{query.group(1)}", headers={"Authorization": f"Bearer {token}"}
    )
    assert found.status_code == 200 and found.json()["totalResults"] == 1


def test_production_checklist_offline_commands_run(tmp_path: Path) -> None:
    """The checklist's first block: writing out an example mapping and checking it offline run
    as shown (the last command needs the reader's directory)."""
    block = fenced_blocks(readme_section("Production checklist"))[0]
    offline = [c for c in shell_commands(block) if "BRIDGE_LDAP_URL" not in c]
    assert len(offline) == 2, offline
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for command in offline:
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert "OK" in done.stdout  # check-mapping's verdict on the written example
