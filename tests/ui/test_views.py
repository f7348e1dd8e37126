"""doctor, and the live and plain progress views."""

from __future__ import annotations

import io

from rich.console import Console

from luminaguard.ui.progress import LiveReporter, PlainReporter
from tests.conftest import CliRunner


def test_doctor_lists_every_backend(cli: CliRunner) -> None:
    result = cli("doctor")
    assert result.code == 0
    lines = result.out.splitlines()
    assert [line.split()[0] for line in lines] == ["sandbox", "gvisor", "qemu", "firecracker"]
    assert all(line.split()[1] in ("yes", "no") for line in lines)
    assert "KVM" in result.out or "kvm" in result.out


def test_unknown_backend_is_a_usage_error(cli: CliRunner) -> None:
    result = cli("run", "examples/01-hello", "--backend", "vmware")
    assert result.code == 1
    assert "unknown backend 'vmware' (available: firecracker, gvisor, qemu, sandbox)" in result.err


def test_plain_reporter() -> None:
    stream = io.StringIO()
    PlainReporter(stream).step("fetch", "failed", "exited with code 2")
    assert stream.getvalue().endswith("fetch                failed  exited with code 2\n")


def test_live_reporter_draws_every_step() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with LiveReporter(["a", "b"], console) as live:
        live.step("a", "succeeded")
        live.step("b", "awaiting_approval", "writes files")
    text = buffer.getvalue()
    assert "succeeded" in text and "awaiting_approval" in text and "writes files" in text
