"""N agents at once through ``luminaguard serve``: throughput, latency, memory, exactly-once.

Usage: .venv/bin/python bench/load.py [--agents 100] [--green 3] [--concurrency 32]

Each agent is one run of its own: ``--green`` Green steps in a chain, one Red step, one
Green step after it; every step appends its id to ``/work/trace.log`` in the agent's
sandbox. All runs are submitted at once to a fresh server (namespace sandbox); a
scripted approver polls ``GET /v1/approvals`` every 50 ms and approves what it finds
in one batch request, each decision bound to its action hash. At the end it reports:

- steps per second (all steps / wall time from the first submission to the last run's
  end), and each step's latency (``step.started`` -> its end, from the audit log),
  p50 and p99;
- approvals answered (must equal the agents), runs succeeded;
- lost and duplicated steps: each run's trace must hold each step exactly once, and
  each step must be recorded ``succeeded`` once (must be 0 and 0);
- the server's peak RSS (VmHWM), the memory of a live sandbox (the server's descendant
  processes' PSS over the number of sandboxes alive, sampled at the peak), the
  server's open file descriptors and this bench's cgroups left at the end.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figures import emit
from serve_bench import (
    conditions,
    detach,
    percentile,
    plan_json,
    served,
)

AGENT = "loadagent"  # its sandboxes' cgroups are named after it
#: where the sandboxes' cgroups are: cgroup v2, or each v1 controller's hierarchy
CGROUPS = [
    Path("/sys/fs/cgroup", *c, "luminaguard") for c in ((), ("memory",), ("pids",), ("cpu",))
]
DOCS = f"""\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: p}}
spec:
  default: red
  approval: {{timeout: 1h}}
  rules:
    - id: trace
      match: {{program: [echo], redirects: {{path: /work/*.log}}}}
      risk: green
      reason: appends to a log
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: {AGENT}}}
spec:
  policy: p
  limits: {{memory_mib: 64, timeout: 120s}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: load}}
spec:
  steps:
"""


def workload(green: int) -> tuple[str, list[str]]:
    """The documents and the step ids, in order."""
    lines, ids = [], []
    for i in range(green):
        needs = f", needs: [g{i - 1}]" if i else ""
        lines.append(
            f"    - {{id: g{i}, agent: {AGENT}, run: 'echo g{i} >> /work/trace.log'{needs}}}"
        )
        ids.append(f"g{i}")
    last = f"g{green - 1}" if green else None
    needs = f", needs: [{last}]" if last else ""
    lines.append(
        f"    - {{id: red, agent: {AGENT}, run: \"printf 'red\\\\n' >> /work/trace.log\"{needs}}}"
    )
    lines.append(
        f"    - {{id: after, agent: {AGENT}, run: 'echo after >> /work/trace.log', needs: [red]}}"
    )
    return DOCS + "\n".join(lines) + "\n", [*ids, "red", "after"]


@dataclass
class Approver:
    """Approves every pending request, in batches, until stopped."""

    remote: Any
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                self.approve_pending()
            except Exception as exc:  # counted; the bench reports the first
                self.errors.append(repr(exc))

    def approve_pending(self) -> None:
        """Approve what is pending now, in one batch (of at most 100)."""
        pending = self.remote.call("GET", "/v1/approvals")["approvals"][:100]
        if not pending:
            return
        decisions = [
            {"run_id": a["run_id"], "step_id": a["step_id"], "action_hash": a["action_hash"],
             "verdict": "approve", "reason": "load bench"}
            for a in pending
        ]  # fmt: skip
        done = self.remote.call("POST", "/v1/approvals/decide", {"decisions": decisions})
        for result in done["results"]:
            if result["status"] == 200:
                self.answered += 1
            else:
                self.errors.append(str(result["error"]))


def ended(remote: Any, wanted: set[str]) -> dict[str, float]:
    """When each run of ``wanted`` ended (its last update), polling the run list.

    Polled rather than read from the event stream: a stream whose reader falls more than
    the server's backlog behind (the submissions keep this thread busy) is dropped.
    """
    while True:
        runs = remote.call("GET", "/v1/runs")["runs"]
        done = {r["id"]: r["updated"] for r in runs if r["id"] in wanted and r["state"] in END}
        if len(done) == len(wanted):
            return done
        time.sleep(0.2)


END = ("succeeded", "failed")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def bench_cgroups() -> int:
    """The cgroups of this bench's sandboxes, over every hierarchy (the most in one)."""
    counts = [
        sum(1 for d in parent.iterdir() if d.is_dir() and d.name.startswith(f"{AGENT}-"))
        for parent in CGROUPS
        if parent.is_dir()
    ]
    return max(counts, default=0)


@dataclass
class Sample:
    """The memory of live sandboxes, at the moment most were alive."""

    sandboxes: int = 0
    pss_mib: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, server_pid: int) -> None:
        while not self.stop.wait(0.5):
            live = bench_cgroups()
            if live > self.sandboxes:
                pss = sum(pss_mib(p) for p in descendants(server_pid))
                self.sandboxes, self.pss_mib = live, pss


def traces(state: Path, run_ids: list[str]) -> Counter[str]:
    """Each ``run/step`` line of every run's trace, counted."""
    seen: Counter[str] = Counter()
    for run_id in run_ids:
        log = state / "runs" / run_id / "agents" / AGENT / "work" / "trace.log"
        text = log.read_text() if log.is_file() else ""
        seen.update(f"{run_id}/{line}" for line in text.split())
    return seen


def latencies(remote: Any, run_ids: list[str]) -> tuple[list[float], Counter[str]]:
    """Each step's start -> end, and how often each step was recorded succeeded."""
    spans, succeeded = [], Counter[str]()
    for run_id in run_ids:
        started: dict[str, float] = {}
        for record in remote.call("GET", f"/v1/runs/{run_id}/audit")["records"]:
            step, event = record["step_id"], record["event"]
            if event == "step.started":
                started[step] = record["time"]
            elif event == "step.succeeded" and step in started:
                spans.append(record["time"] - started[step])
                succeeded[f"{run_id}/{step}"] += 1
    return spans, succeeded


def run(agents: int, green: int, concurrency: int, root: Path) -> None:
    docs, steps = workload(green)
    (root / "load.yaml").write_text(docs)
    plan = plan_json(root / "load.yaml")
    ids = [f"load-{i}" for i in range(agents)]
    cgroups_before = bench_cgroups()
    with served(root, concurrency) as server:
        remote = server.remote
        approver, sample = Approver(remote), Sample()
        threads = [
            threading.Thread(target=approver.run),
            threading.Thread(target=sample.run, args=(server.process.pid,)),
        ]
        for thread in threads:
            thread.start()
        try:
            start = time.time()
            with concurrent.futures.ThreadPoolExecutor(min(agents, 32)) as pool:
                body = {"plan": plan}
                calls = pool.map(
                    lambda i: remote.call("POST", "/v1/runs", {**body, "run_id": i}), ids
                )
                list(calls)
            ends = ended(remote, set(ids))
            wall = max(ends.values()) - start
        except BaseException:
            keep = Path(tempfile.gettempdir()) / "luminaguard-load-serve.log"
            keep.write_bytes((root / "serve.log").read_bytes())
            print(f"failed: the server's log is kept in {keep}", file=sys.stderr)
            raise
        finally:
            approver.stop.set()
            sample.stop.set()
            for thread in threads:
                thread.join()
        states = Counter(r["state"] for r in remote.call("GET", "/v1/runs")["runs"])
        spans, succeeded = latencies(remote, ids)
        fds = len(os.listdir(f"/proc/{server.process.pid}/fd"))
        peak = server.peak_rss_mib()
    seen = traces(root / "state", ids)
    expected = {f"{r}/{s}" for r in ids for s in steps}
    lost = len(expected - set(seen)) + len(expected - set(succeeded))
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    duplicated += sum(n - 1 for n in succeeded.values() if n > 1)
    total = agents * len(steps)
    per_sandbox = sample.pss_mib / sample.sandboxes if sample.sandboxes else 0.0
    errors = f"; errors: {approver.errors[0]}" if approver.errors else ""
    p50, p99 = percentile(spans, 0.5) * 1000, percentile(spans, 0.99) * 1000
    left = bench_cgroups() - cgroups_before
    for line in (  # flushed: the bench may run for long
        f"agents {agents}, steps {total} ({len(steps)} per agent, 1 Red),"
        f" server --concurrency {concurrency}",
        f"  runs: {dict(states)}; approvals answered {approver.answered} of {agents}{errors}",
        f"  wall {wall:.1f} s, {total / wall:.1f} steps/s;"
        f" step latency p50 {p50:.0f} ms, p99 {p99:.0f} ms",
        f"  lost steps {lost}, duplicated steps {duplicated}",
        f"  server peak RSS {peak:.0f} MiB; {sample.sandboxes} sandboxes alive at the peak,"
        f" {per_sandbox:.1f} MiB PSS each (the server's descendants' PSS / sandboxes)",
        f"  at the end: server fds {fds}, this bench's cgroups left {left}",
    ):
        print(line, flush=True)
    emit(
        f"{agents} agents at once through `luminaguard serve` ({len(steps)} steps each, one Red"
        " approved through the API)",
        f"lost {lost}, duplicated {duplicated}; {total / wall:.1f} steps/s, step p99"
        f" {p99:.0f} ms; server peak RSS {peak:.0f} MiB",
        None,
        "0 lost, 0 duplicated",
        lost == 0 and duplicated == 0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[100])
    parser.add_argument("--green", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(conditions(), flush=True)
    for agents in args.agents:
        with tempfile.TemporaryDirectory(prefix="luminaguard-load-") as temporary:
            root = Path(temporary)
            try:
                run(agents, args.green, args.concurrency, root)
            finally:
                detach(root)
    print(
        "reproduce: .venv/bin/python bench/load.py --agents "
        + " ".join(map(str, args.agents))
        + f" --green {args.green} --concurrency {args.concurrency}"
    )


if __name__ == "__main__":
    main()
