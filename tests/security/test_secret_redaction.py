"""Secrets never leave in any form: not in runs.db, the audit log, or what the CLI prints.

Each attack gets a secret into a step's outputs or error text, in one of the forms a
program commonly writes it in, and then looks for every form of it in the bytes of
runs.db (and its -wal), in ``audit show`` and ``status`` and in the CLI's stdout/stderr.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.parse
from pathlib import Path

import pytest

from luminaguard.hypervisor.registry import backend as named_backend
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer
from tests.integration.conftest import sandbox  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("sandbox")

SITE_PACKAGES = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())

SECRETS = {
    "quote": 'q"uote-9f8e7d',
    "backslash": "back\\slash-9f8e",
    "accent": "pässwörd-é-9f8e",
    "apostrophe": "it's-9f8e7d6c",
}

LEAK = r"""
import base64, json, os, sys, urllib.parse
t = os.environ["TOKEN"]
print(t)
print(json.dumps(t))
print(json.dumps({"token": t}, ensure_ascii=False))
print(repr(t), ascii(t), repr({"k": '"' + t}))
print(urllib.parse.quote(t, safe=""), urllib.parse.quote_plus(t))
print(base64.b64encode(t.encode()).decode(), base64.b64encode(b"user:" + t.encode()).decode())
print("luminaguard-sandbox: " + json.dumps(t), file=sys.stderr)
print("luminaguard-sandbox: cannot set up " + repr(t), file=sys.stderr)
sys.exit(125)
"""

LEAK_STEP = "    - {id: leak, agent: a, run: python3 /data/leak.py}"

WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: py, match: {kind: run, command: {regex: '^python3 '}}, risk: green, reason: test}
    - {id: srv, match: {server: echo}, risk: green, reason: test server}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  env: {TOKEN: {from_env: LG_ATTACK_TOKEN}}
  mounts: [{source: %(data)s, target: /data}, {source: %(site)s, target: /opt/site}]
  mcp_servers:
    echo:
      command: /usr/bin/python3
      args: [/data/server.py]
      env: {PYTHONPATH: /opt/site, API_TOKEN: {from_env: LG_ATTACK_TOKEN}}
  limits: {memory_mib: 256, timeout: 60s}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
%(steps)s
"""

SERVER = """
import os
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("echo")


@server.tool()
def check() -> str:
    \"\"\"Check the token (and echo it in the error, as careless servers do).\"\"\"
    token = os.environ["API_TOKEN"]
    raise ToolError(f"token rejected: {token} ({token!r}, {json_text(token)})")


def json_text(value: str) -> str:
    import json
    return json.dumps(value)


server.run()
"""


def encodings(secret: str) -> list[bytes]:
    """Every form the attacks write the secret in, as the bytes a file would hold."""
    raw = secret.encode()
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        repr('"' + secret)[2:-1],
        ascii(secret)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        base64.b64encode(raw).decode().rstrip("="),
        base64.b64encode(b"user:" + raw).decode()[7:-4],  # the part made of the secret alone
    }
    return [form.encode() for form in forms]


def leaks(secret: str, *texts: str | bytes) -> list[tuple[int, bytes]]:
    """(which text, which form) for every form of ``secret`` found in ``texts``."""
    found = []
    for index, text in enumerate(texts):
        data = text.encode() if isinstance(text, str) else text
        found += [(index, form) for form in encodings(secret) if form in data]
    return found


def database_bytes(state: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(state.glob("runs.db*")))


def start(
    cli: CliRunner, write: Writer, tmp_path: Path, steps: str, backend: str = "sandbox"
) -> tuple[Path, list[str]]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "leak.py").write_text(LEAK)
    (data / "server.py").write_text(SERVER)
    text = WORKLOAD % {"data": data, "site": SITE_PACKAGES, "steps": steps}
    state = tmp_path / "state"
    path = str(write("w.yaml", text))
    result = cli("run", path, "--state", str(state), "--run-id", "r", "--backend", backend)
    shown = [cli(*args, "--state", str(state)) for args in (["audit", "show"], ["status", "r"])]
    outputs = [result.out, result.err] + [r.out + r.err for r in shown]
    assert result.code == 2, outputs
    return state, outputs


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_a_secret_printed_escaped_never_leaves(
    kind: str, cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a ``run:`` step prints its secret raw, JSON-escaped, with repr, URL-encoded and
    in base64, on stdout and stderr, and fails with a sandbox-failure line quoting it; the
    secret holds ``"``, ``\\``, ``'`` or non-ASCII characters, which redacting JSON text missed.

    Fixed by 2ee77be "secrets: redacted as values in every form before stored or printed;
    too-short secrets refused at run start".
    """
    secret = SECRETS[kind]
    monkeypatch.setenv("LG_ATTACK_TOKEN", secret)
    state, printed = start(
        cli, write, tmp_path, "    - {id: leak, agent: a, run: python3 /data/leak.py}"
    )
    record = RunStore(state).step("r", "leak")
    assert record.state == "failed" and "luminaguard-sandbox" in (record.error or "")
    assert "***" in record.outputs["stdout"]
    assert leaks(secret, database_bytes(state), *printed) == []


@pytest.mark.parametrize("backend", ["gvisor", pytest.param("qemu", marks=pytest.mark.vm)])
def test_a_secret_printed_escaped_never_leaves_other_backends(
    backend: str, cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: as above, on gVisor and in a QEMU micro-VM (redaction is the runner's, so it
    holds whatever the boundary): one secret with ``"``, ``\\`` and ``é``.

    Fixed by 2ee77be "secrets: redacted as values in every form before stored or printed;
    too-short secrets refused at run start".
    """
    available = named_backend(backend).availability()
    if not available.usable:
        pytest.skip(f"{backend} backend: {available.detail}")
    secret = 'all"of\\them-é-9f8e'
    monkeypatch.setenv("LG_ATTACK_TOKEN", secret)
    state, printed = start(cli, write, tmp_path, LEAK_STEP, backend)
    record = RunStore(state).step("r", "leak")
    assert record.state == "failed" and "***" in record.outputs["stdout"], record
    assert leaks(secret, database_bytes(state), *printed) == []


def test_a_tool_error_echoing_the_token_never_leaves(
    cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: an MCP stdio server in the sandbox puts its token in a tool error; the step's
    error text was stored in runs.db and printed unredacted.

    Fixed by 2ee77be "secrets: redacted as values in every form before stored or printed;
    too-short secrets refused at run start".
    """
    secret = SECRETS["quote"]
    monkeypatch.setenv("LG_ATTACK_TOKEN", secret)
    state, printed = start(cli, write, tmp_path, "    - {id: call, agent: a, call: echo.check}")
    record = RunStore(state).step("r", "call")
    assert record.state == "failed" and "token rejected: ***" in (record.error or "")
    assert leaks(secret, database_bytes(state), *printed) == []


def test_a_secret_too_short_to_redact_is_refused_before_anything_runs(
    cli: CliRunner, write: Writer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: a 3-character secret was never redacted (shorter than 4 were skipped); now a
    secret shorter than 8 characters is refused at run start, naming its variable, exit 1.

    Fixed by 2ee77be "secrets: redacted as values in every form before stored or printed;
    too-short secrets refused at run start".
    """
    monkeypatch.setenv("LG_ATTACK_TOKEN", "x7q")
    data = tmp_path / "data"
    data.mkdir()
    text = WORKLOAD % {"data": data, "site": SITE_PACKAGES, "steps": LEAK_STEP}
    state = tmp_path / "state"
    result = cli("run", str(write("w.yaml", text)), "--state", str(state), "--run-id", "r")
    assert result.code == 1
    assert "LG_ATTACK_TOKEN" in result.err and "shorter than 8" in result.err
    assert "x7q" not in result.out + result.err
    assert not (state / "runs" / "r").exists()
    store = RunStore(state)
    assert store.runs() == []
