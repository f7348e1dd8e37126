"""``luminaguard serve`` on the namespace sandbox: approval latency, many runs, throughput.

(a) approve -> the Red step's command starting, over N approvals made one at a time
    (target <= 50 ms median). The Red step's command is ``date +%s.%N``: its first
    action prints the clock (CLOCK_REALTIME, shared with the sandbox), read back from
    the step's stdout; the approval's clock is read right before its request is sent.
    The ``step.started`` audit record's time (the event stream's) is shown beside it.
(b) R runs of S Green steps (a chain each) submitted at once through the API (R
    requests in parallel): all must succeed; wall time from the first request to the
    last run's end event, steps per second, the server process's peak RSS (VmHWM).
(c) the same R runs of S steps through local ``luminaguard run`` processes, C of them
    at a time, into one state folder (the server runs with ``--concurrency C``): the
    same runs, steps, work disks and steps at once; the difference is one server
    process against a process per run. Target: server >= 0.9x local. For context, one
    local process running all R*S steps as one workload (R chains, --concurrency C).

Each part uses a fresh state folder (and (a) and (b) a fresh server process).
Run: .venv/bin/python bench/serve_bench.py [--approvals N] [--runs R] [--steps S] [--concurrency C]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from figures import emit

from luminaguard.hypervisor.linux import work_disk
from luminaguard.ui.remote import EventStream, Remote

ROOT = Path(__file__).resolve().parent.parent
#: Seconds the bench's event streams may stay silent (a loaded machine is slow).
IDLE = 600.0

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  default: red
  approval: {timeout: 1h}
  rules:
    - {id: quiet, match: {program: ['true', echo]}, risk: green, reason: no effect}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  limits: {memory_mib: 64, timeout: 30s}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: %s}
spec:
  steps:
"""


def red_workload() -> str:
    """A Green step (the run's sandbox and /work exist), then the Red step that stamps."""
    return HEAD % "red" + (
        "    - {id: warm, agent: a, run: 'true'}\n"
        "    - {id: stamp, agent: a, run: 'date +%s.%N', needs: [warm]}\n"
    )


def chains(count: int, steps: int) -> str:
    """``count`` independent chains of ``steps`` Green steps."""
    lines = []
    for c in range(count):
        for i in range(steps):
            needs = f", needs: [c{c}s{i - 1}]" if i else ""
            lines.append(f"    - {{id: c{c}s{i}, agent: a, run: 'echo {c}-{i}'{needs}}}")
    return HEAD % "green" + "\n".join(lines) + "\n"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def luminaguard(*args: str) -> list[str]:
    return [sys.executable, "-m", "luminaguard", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    remote: Remote

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextlib.contextmanager
def served(root: Path, concurrency: int) -> Iterator[Served]:
    """A ``luminaguard serve`` child process over ``root/state``, and an admin's client."""
    state = root / "state"
    token = subprocess.run(
        luminaguard("token", "create", "bench", "--role", "admin", "--state", str(state)),
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    command = luminaguard("serve", "--state", str(state), "--workspace", str(root))
    command += ["--port", str(port), "--concurrency", str(concurrency), "--grace", "5"]
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(command, env=child_env(), stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Served(process, Remote(url, token, timeout=120))
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"luminaguard serve exited {process.returncode}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url + "/readyz", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise SystemExit("luminaguard serve was not ready within 120 s")


def plan_json(path: Path) -> dict[str, object]:
    from luminaguard.compiler import compile_paths
    from luminaguard.scheduler.sandboxes import absolute_plan

    _, plans = compile_paths([str(path)])
    return absolute_plan(plans[0]).model_dump(mode="json")


def wait_for(stream: EventStream, wanted: set[str], kinds: set[str]) -> dict[str, float]:
    """Read events until each run of ``wanted`` had an event of ``kinds``: its time."""
    seen: dict[str, float] = {}
    for event in stream:
        if event.run_id in wanted and event.kind in kinds:
            seen[event.run_id] = time.time()
            if len(seen) == len(wanted):
                return seen
    raise SystemExit(f"the event stream ended; {len(wanted) - len(seen)} runs not seen")


def submit_all(remote: Remote, plan: dict[str, object], ids: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
        body = {"plan": plan}
        list(pool.map(lambda i: remote.call("POST", "/v1/runs", {**body, "run_id": i}), ids))


# --- (a) approve -> command start ---------------------------------------------------------
@dataclass
class Latencies:
    command: list[float]
    recorded: list[float]
    answered: list[float]


def approval_latency(root: Path, count: int, concurrency: int) -> Latencies:
    path = root / "red.yaml"
    path.write_text(red_workload())
    plan = plan_json(path)
    ids = [f"red-{i}" for i in range(count)]
    with served(root, concurrency) as server:
        remote = server.remote
        stream = remote.events(idle=IDLE)
        submit_all(remote, plan, ids)
        wait_for(stream, set(ids), {"run.halted"})
        pending = {
            a["run_id"]: a["action_hash"] for a in remote.call("GET", "/v1/approvals")["approvals"]
        }
        latencies = Latencies([], [], [])
        for run_id in ids:
            sent = time.time()
            remote.call(
                "POST", f"/v1/approvals/{run_id}/stamp/approve", {"action_hash": pending[run_id]}
            )
            latencies.answered.append(time.time() - sent)
            started = None
            for event in stream:
                if event.run_id != run_id:
                    continue
                if event.kind == "step.started" and event.step_id == "stamp":
                    started = event.time
                if event.kind in ("run.succeeded", "run.failed"):
                    break
            run = remote.call("GET", f"/v1/runs/{run_id}")
            assert run["state"] == "succeeded", run
            stamp = next(s for s in run["steps"] if s["step_id"] == "stamp")
            latencies.command.append(float(stamp["outputs"]["stdout"]) - sent)
            if started is not None:
                latencies.recorded.append(started - sent)
        stream.close()
    return latencies


# --- (b) many runs through the server ------------------------------------------------------
@dataclass
class Throughput:
    wall: float
    steps: int
    peak_rss_mib: float = 0.0

    @property
    def per_second(self) -> float:
        return self.steps / self.wall


def through_server(root: Path, runs: int, steps: int, concurrency: int) -> Throughput:
    path = root / "green.yaml"
    path.write_text(chains(1, steps))
    plan = plan_json(path)
    ids = [f"green-{i}" for i in range(runs)]
    with served(root, concurrency) as server:
        remote = server.remote
        stream = remote.events(idle=IDLE)
        start = time.time()
        submit_all(remote, plan, ids)
        ends = wait_for(stream, set(ids), {"run.succeeded", "run.failed"})
        wall = max(ends.values()) - start
        stream.close()
        states = {r["id"]: r["state"] for r in remote.call("GET", "/v1/runs")["runs"]}
        failed = [i for i in ids if states.get(i) != "succeeded"]
        if failed:
            raise SystemExit(f"{len(failed)} runs did not succeed, e.g. {failed[0]}")
        return Throughput(wall, runs * steps, server.peak_rss_mib())


# --- (c) the same steps through local `luminaguard run` ----------------------------------
def through_local_runs(root: Path, runs: int, steps: int, concurrency: int) -> Throughput:
    path = root / "green.yaml"
    path.write_text(chains(1, steps))
    state = root / "state"

    def one(index: int) -> int:
        command = luminaguard("run", str(path), "--state", str(state), "--run-id", f"local-{index}")
        done = subprocess.run(command, env=child_env(), capture_output=True)
        return done.returncode

    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(one, range(runs)))
    wall = time.time() - start
    if any(codes):
        raise SystemExit(f"local runs exited {sorted(set(codes))}")
    return Throughput(wall, runs * steps)


def through_one_process(root: Path, runs: int, steps: int, concurrency: int) -> Throughput:
    path = root / "chains.yaml"
    path.write_text(chains(runs, steps))
    state = root / "state"
    command = luminaguard("run", str(path), "--state", str(state), "--run-id", "all")
    command += ["--concurrency", str(concurrency)]
    start = time.time()
    done = subprocess.run(command, env=child_env(), capture_output=True)
    wall = time.time() - start
    if done.returncode:
        raise SystemExit(f"one-process run exited {done.returncode}: {done.stderr[-500:]!r}")
    return Throughput(wall, runs * steps)


# --- report --------------------------------------------------------------------------------
def conditions() -> str:
    busy = []
    for stat in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if stat.read_text().strip() in ("stress-ng", "stress"):
                busy.append(stat.parent.name)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    warning = f"; a load generator is running ({len(busy)} processes): NOT VALID" if busy else ""
    return f"conditions: {os.cpu_count()} CPUs, load average {load}{warning}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def detach(root: Path) -> None:
    if os.getuid() == 0:
        for point in work_disk.mounted_under(root):
            work_disk.detach(point)


def part(name: str, base: Path) -> Path:
    folder = base / name
    folder.mkdir()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--approvals", type=int, default=100)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    before = conditions()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        base = Path(tmp)
        stack.callback(detach, base)
        folders = {name: part(name, base) for name in ("a", "b", "c", "d")}
        try:
            latency = approval_latency(folders["a"], args.approvals, args.concurrency)
            detach(folders["a"])
            server = through_server(folders["b"], args.runs, args.steps, args.concurrency)
            detach(folders["b"])
            local = through_local_runs(folders["c"], args.runs, args.steps, args.concurrency)
            detach(folders["c"])
            single = through_one_process(folders["d"], args.runs, args.steps, args.concurrency)
        finally:
            detach(base)
    after = conditions()
    ms = 1000
    command, recorded = latency.command, latency.recorded
    report = [
        before,
        f"(a) approve -> the Red step's command starting (its first action, `date +%s.%N`,"
        f" read from its stdout), {len(command)} runs halted, then approved one at a time:"
        f" median {statistics.median(command) * ms:.1f} ms,"
        f" p99 {percentile(command, 0.99) * ms:.1f} ms  (target median <= 50 ms)",
        f"    approve -> step.started recorded in the audit log: median"
        f" {statistics.median(recorded) * ms:.1f} ms, p99 {percentile(recorded, 0.99) * ms:.1f} ms"
        if recorded
        else "    (no step.started times read)",
        f"    the approve request's own round trip: median"
        f" {statistics.median(latency.answered) * ms:.1f} ms; command start, median of the"
        f" first 10 approvals {statistics.median(command[:10]) * ms:.1f} ms, of the last 10"
        f" {statistics.median(command[-10:]) * ms:.1f} ms",
        f"(b) {args.runs} runs x {args.steps} Green steps (a chain each) submitted at once,"
        f" server --concurrency {args.concurrency}: all succeeded in {server.wall:.2f} s,"
        f" {server.per_second:.1f} steps/s; server peak RSS (VmHWM) {server.peak_rss_mib:.0f} MiB",
        f"(c) the same {args.runs} runs through local `luminaguard run` processes,"
        f" {args.concurrency} at a time, one state folder: {local.wall:.2f} s,"
        f" {local.per_second:.1f} steps/s",
        f"    server / local = {server.per_second / local.per_second:.2f}x  (target >= 0.9x)",
        f"    for context, one local process, the {args.runs * args.steps} steps as one workload"
        f" ({args.runs} chains, --concurrency {args.concurrency}): {single.wall:.2f} s,"
        f" {single.per_second:.1f} steps/s;"
        f" server / it = {server.per_second / single.per_second:.2f}x",
        after,
        "reproduce: .venv/bin/python bench/serve_bench.py"
        f" --approvals {args.approvals} --runs {args.runs} --steps {args.steps}"
        f" --concurrency {args.concurrency}",
    ]
    print("\n".join(report))
    median = statistics.median(command)
    emit(
        "approve -> the Red step's command starting, through `luminaguard serve`"
        f" ({len(command)} runs halted, approved one at a time)",
        f"{median * ms:.1f} ms median, p99 {percentile(command, 0.99) * ms:.1f} ms",
        f"the approve request's own round trip: {statistics.median(latency.answered) * ms:.1f} ms",
        "≤ 50 ms median",
        median <= 0.05,
    )
    ratio = server.per_second / local.per_second
    emit(
        f"{args.runs} runs x {args.steps} Green steps submitted at once through the API",
        f"{server.per_second:.1f} steps/s ({ratio:.2f}x); server peak RSS"
        f" {server.peak_rss_mib:.0f} MiB",
        f"local `luminaguard run` processes, {args.concurrency} at a time:"
        f" {local.per_second:.1f} steps/s; one process, one workload: {single.per_second:.1f}",
        "≥ 0.9x the local runs",
        ratio >= 0.9,
    )


if __name__ == "__main__":
    main()
