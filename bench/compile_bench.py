"""Compile a generated 1,000-step workload with a 50-rule policy; time policy decisions.

Targets (../shared/DESIGN.md): compile <= 1 s; decision <= 20 us median (50 rules).
Run: .venv/bin/python bench/compile_bench.py [--steps N] [--rules N] [--repeat N]

``--growth 1000,10000,100000``: compile (load + compile, as ``luminaguard plan``) and
print the plan table for chains, wide fan-out/fan-in DAGs and template-heavy chains
(every step's command or arguments use ``params`` and earlier steps' outputs), run
steps only or half ``call`` steps checked against a lock; each case in a process of
its own (the median of three up to 10,000 steps), printing wall and CPU time, peak
RSS and the growth from one size to the next (target: 10,000 steps <= 1.5 s and
<= 300 MB; 10x the steps <= 12x the time).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from figures import emit
from rich.console import Console

from luminaguard.compiler import compile_paths
from luminaguard.compiler.lock import LockedServer, LockedTool, ToolLock
from luminaguard.config.models import PolicySpec
from luminaguard.policy import Action, PolicyEngine
from luminaguard.ui.plan_view import print_plan

SERVERS = ["fs", "git", "memory", "fetch", "mail"]
TOOLS = [
    "read_file",
    "write_file",
    "list_directory",
    "git_log",
    "git_push",
    "search_nodes",
    "fetch",
    "send_email",
]


def policy_yaml(rules: int) -> str:
    lines = [
        "apiVersion: luminaguard.dev/v1",
        "kind: Policy",
        "metadata: {name: bench}",
        "spec:",
        "  rules:",
    ]
    shapes = [
        '{{server: {s}, tool: "{t}*", args: {{path: {{path: "/work/r{i}/**"}}}}}}',
        '{{tool: "{t}", args: {{url: {{regex: "^https://h{i}\\\\."}}}}}}',
        "{{kind: run, command: {{regex: '^cmd{i} '}}}}",
        "{{server: {s}, annotations: {{readOnlyHint: true, openWorldHint: false}},"
        " args: {{n: {i}}}}}",
        '{{server: "{s}", tool: ["x{i}_*", "y{i}_*"]}}',
    ]
    for i in range(rules):
        shape = shapes[i % len(shapes)].format(s=SERVERS[i % 5], t=TOOLS[i % 8], i=i)
        risk = "green" if i % 2 else "red"
        lines.append(
            f"    - {{id: rule-{i}, match: {shape}, risk: {risk}, reason: generated rule {i}}}"
        )
    return "\n".join(lines) + "\n"


def agent_yaml() -> str:
    servers = "\n".join(f"    {s}: {{command: mcp-{s}}}" for s in SERVERS)
    return (
        "apiVersion: luminaguard.dev/v1\nkind: Agent\nmetadata: {name: worker}\n"
        f"spec:\n  policy: bench\n  mcp_servers:\n{servers}\n"
    )


def step_yaml(i: int) -> str:
    needs = f"\n      needs: [s{i - 1}{', s' + str(i - 7) if i >= 7 else ''}]" if i else ""
    if i % 3 == 0:
        body = f'run: "cmd{i % 50} {{{{ params.root }}}}/{i}"'
    else:
        tool = TOOLS[i % 8]
        output = "stdout" if (i - 1) % 3 == 0 else "text"
        content = f"{{{{ steps.s{i - 1}.outputs.{output} }}}}" if i % 10 == 1 else "static"
        body = "".join(
            [
                f"call: {SERVERS[i % 5]}.{tool}\n      args:\n",
                f'        path: "{{{{ params.root }}}}/r{i % 50}/f{i}"\n',
                f'        url: "https://h{i % 50}.example/{i}"\n',
                f'        content: "{content}"\n        n: {i % 50}',
            ]
        )
    return f"    - id: s{i}\n      agent: worker{needs}\n      {body}\n"


def workload_yaml(steps: int) -> str:
    head = "apiVersion: luminaguard.dev/v1\nkind: Workload\nmetadata: {name: big}\nspec:\n"
    return (
        head + "  params: {root: /work}\n  steps:\n" + "".join(step_yaml(i) for i in range(steps))
    )


def timed(function, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def per_decision_us(engine: PolicyEngine, actions: list[Action], batches: int = 30) -> float:
    """Median over batches of the mean time of one decision, candidate cache warm."""
    for action in actions:
        engine.decide(action)  # warm the per-tool candidate cache, as a long-running runner has
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for action in actions:
            engine.decide(action)
        samples.append((time.perf_counter_ns() - start) / len(actions) / 1000)
    return statistics.median(samples)


def worst_case_engine(rules: int) -> PolicyEngine:
    """Rules with only argument tests: every rule is a candidate for every call."""
    spec = PolicySpec.model_validate(
        {
            "rules": [
                {
                    "id": f"r{i}",
                    "match": {"args": {"path": {"path": f"/r{i}/**"}}},
                    "risk": "green",
                    "reason": "x",
                }
                for i in range(rules)
            ]
        }
    )
    return PolicyEngine("worst", spec)


SHAPES = ("chain", "wide", "templates")


def growth_step(i: int, needs: list[str], calls: bool) -> str:
    """A run step, or (``calls``) a call step every other step; one in 50 uses s0's output."""
    need = f", needs: [{', '.join(needs)}]" if needs else ""
    if calls and i % 2:
        server, tool = SERVERS[i % 5], TOOLS[i % 8]
        args = f'{{path: "/work/r{i % 50}/f{i}", n: {i % 50}}}'
        return f"    - {{id: s{i}, agent: worker, call: {server}.{tool}, args: {args}{need}}}\n"
    uses = " {{ steps.s0.outputs.stdout }}" if i % 50 == 26 else ""
    return f'    - {{id: s{i}, agent: worker, run: "cmd{i % 50} /work/{i}{uses}"{need}}}\n'


def template_step(i: int, calls: bool) -> str:
    """A step of the template-heavy chain: one or two templates in each, using ``params``
    and the outputs of the step before (and of the one seven before, every other step)."""
    need = f", needs: [s{i - 1}{f', s{i - 7}' if i >= 7 else ''}]" if i else ""
    before = f"s{i - 1}"
    if calls and i % 2:
        server, tool = SERVERS[i % 5], TOOLS[i % 8]
        output = "stdout" if (i - 1) % 2 == 0 else "text"
        content = f"{{{{ steps.{before}.outputs.{output} }}}}"
        args = f'{{path: "{{{{ params.root }}}}/r{i % 50}/f{i}", content: "{content}"}}'
        return f"    - {{id: s{i}, agent: worker, call: {server}.{tool}, args: {args}{need}}}\n"
    uses = ""
    if i:
        output = "text" if calls and (i - 1) % 2 else "stdout"
        uses = f" {{{{ steps.{before}.outputs.{output} }}}}"
        if i >= 7 and i % 2 == 0:
            older = "text" if calls and (i - 7) % 2 else "stdout"
            uses += f" {{{{ steps.s{i - 7}.outputs.{older} }}}}"
    command = f"cmd{i % 50} {{{{ params.root }}}}/{i}{uses}"
    return f'    - {{id: s{i}, agent: worker, run: "{command}"{need}}}\n'


def growth_workload(shape: str, steps: int, calls: bool) -> str:
    """A chain (each step needs the one before and the one seven before), a wide DAG (s0
    fans out to every middle step and the last step needs them all), or a template-heavy
    chain (every step's command or arguments templated: ``template_step``)."""
    head = "apiVersion: luminaguard.dev/v1\nkind: Workload\nmetadata: {name: big}\nspec:\n"
    if shape == "templates":
        params = "  params: {root: /work}\n"
        return head + params + "  steps:\n" + "".join(template_step(i, calls) for i in range(steps))
    if shape == "chain":
        body = [
            growth_step(i, [f"s{i - 1}"] + ([f"s{i - 7}"] if i >= 7 else []) if i else [], calls)
            for i in range(steps)
        ]
    else:
        body = [growth_step(0, [], calls)]
        body += [growth_step(i, ["s0"], calls) for i in range(1, steps - 1)]
        body.append(growth_step(steps - 1, [f"s{i}" for i in range(1, steps - 1)], calls))
    return head + "  steps:\n" + "".join(body)


def bench_lock() -> ToolLock:
    """Every tool of every server of the agent, with a small input schema."""
    schema = {
        "type": "object",
        "properties": {"path": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
        "required": ["path"],
    }
    tool = LockedTool(
        annotations={"readOnlyHint": False},
        description_sha256="0" * 64,
        input_schema_sha256="1" * 64,
        input_schema=schema,
    )
    tools = dict.fromkeys(TOOLS, tool)
    return ToolLock(servers={f"worker/{s}": LockedServer(tools=tools) for s in SERVERS})


def growth_case(shape: str, steps: int, calls: bool) -> dict[str, float]:
    """Compile one case and print its table, in this process: times and peak RSS.

    The peer, timed last (its memory is not in the peak): PyYAML's C loader reading the
    same files, which is all a tool that only parses them would do.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "policy.yaml").write_text(policy_yaml(50))
        (folder / "agent.yaml").write_text(agent_yaml())
        (folder / "workload.yaml").write_text(growth_workload(shape, steps, calls))
        wall, cpu = time.perf_counter(), time.process_time()
        _, plans = compile_paths([tmp], lock=bench_lock() if calls else None)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert len(plans[0].steps) == steps
        table_cpu = time.process_time()
        print_plan(plans[0], Console(file=io.StringIO(), width=160))
        table_cpu = time.process_time() - table_cpu
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        del plans
        parse = time.perf_counter()
        for path in sorted(folder.iterdir()):
            list(yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader))
        parse = time.perf_counter() - parse
    return {"wall": wall, "cpu": cpu, "rss_mb": rss_mb, "table_cpu": table_cpu, "parse": parse}


def emit_growth(cases: dict[int, list[tuple[str, dict[str, float]]]], growths: list[float]) -> None:
    """The README's figures: the worst case at 10,000 and 100,000 steps, the worst growth."""
    for steps, found in sorted(cases.items()):
        if steps not in (10_000, 100_000):
            continue
        name, worst = max(found, key=lambda case: case[1]["wall"])
        rss = max(case["rss_mb"] for _, case in found)
        parse = max(case["parse"] for _, case in found)
        small = steps == 10_000
        emit(
            f"compile {steps:,} steps, worst of {len(found)} shapes (chain, wide, templated;"
            " each with and without call steps checked against a lock)",
            f"{worst['wall']:.2f} s ({name}), peak RSS {rss:.0f} MB",
            f"PyYAML's C loader parsing the same files: {parse:.2f} s",
            "≤ 1.5 s and ≤ 300 MB" if small else "figures printed",
            worst["wall"] <= 1.5 and rss <= 300 if small else None,
        )
    if growths:
        emit(
            "compile growth: 10x the steps, worst CPU ratio over the shapes",
            f"{max(growths):.1f}x",
            None,
            "≤ 12x",
            max(growths) <= 12,
        )


def median_case(shape: str, steps: int, calls: bool) -> dict[str, float]:
    """One case in a fresh process; up to 10,000 steps, the median (by wall) of three."""
    command = [sys.executable, __file__, "--case", f"{shape},{steps},{int(calls)}"]
    runs = [
        json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        for _ in range(3 if steps <= 10_000 else 1)
    ]
    return sorted(runs, key=lambda found: found["wall"])[len(runs) // 2]


def growth(sizes: list[int]) -> None:
    """Each shape, with and without call steps, at each size in a fresh process."""
    print(
        f"{'case':<22}{'steps':>8}{'wall s':>9}{'cpu s':>9}{'peak RSS MB':>13}"
        f"{'table cpu s':>13}{'cpu growth':>12}"
    )
    cases: dict[int, list[tuple[str, dict[str, float]]]] = {}
    growths: list[float] = []
    for shape in SHAPES:
        for calls in (False, True):
            previous: dict[str, float] | None = None
            for steps in sizes:
                found = median_case(shape, steps, calls)
                ratio = f"x{found['cpu'] / previous['cpu']:.1f}" if previous else ""
                name = f"{shape}{' +calls+lock' if calls else ''}"
                print(
                    f"{name:<22}{steps:>8}{found['wall']:>9.2f}{found['cpu']:>9.2f}"
                    f"{found['rss_mb']:>13.0f}{found['table_cpu']:>13.2f}{ratio:>12}",
                    flush=True,
                )
                if previous:
                    growths.append(found["cpu"] / previous["cpu"])
                cases.setdefault(steps, []).append((name, found))
                previous = found
    emit_growth(cases, growths)
    print(
        "reproduce: .venv/bin/python bench/compile_bench.py --growth "
        + ",".join(str(n) for n in sizes)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--growth", help="sizes to compile, e.g. 1000,10000,100000")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # SHAPE,STEPS,CALLS: one case
    args = parser.parse_args()
    if args.case:
        shape, steps, calls = args.case.split(",")
        print(json.dumps(growth_case(shape, int(steps), calls == "1")))
        return
    if args.growth:
        growth([int(n) for n in args.growth.split(",")])
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "policy.yaml").write_text(policy_yaml(args.rules))
        (folder / "agent.yaml").write_text(agent_yaml())
        (folder / "workload.yaml").write_text(workload_yaml(args.steps))
        texts = [p.read_text() for p in sorted(folder.glob("*.yaml"))]
        bundle, plans = compile_paths([tmp])
        compile_samples = timed(lambda: compile_paths([tmp]), args.repeat)
        parse_samples = timed(
            lambda: [list(yaml.load_all(t, Loader=yaml.CSafeLoader)) for t in texts], args.repeat
        )
    plan = plans[0]
    engine = bundle.engine("bench")
    assert len(engine.rules) == args.rules and len(plan.steps) == args.steps
    actions = [step.action for step in plan.steps if not step.runtime]
    typical = per_decision_us(engine, actions)
    miss = Action(kind="call", server="fs", tool="write_file", args={"path": "/elsewhere/x"})
    worst = per_decision_us(worst_case_engine(args.rules), [miss] * 1000)
    compile_median = statistics.median(compile_samples)
    parse_median = statistics.median(parse_samples)
    counts = plan.counts()
    report = [
        f"workload: {args.steps} steps ({counts}); policy: {args.rules} rules;"
        f" repeats: {args.repeat}",
        "compile (load+validate+render+classify+hash), median: "
        f"{compile_median * 1000:.1f} ms  (target <= 1000 ms)",
        f"baseline: bare libyaml parse of the same files, median: {parse_median * 1000:.1f} ms"
        f"  (compile/parse = {compile_median / parse_median:.1f}x)",
        f"policy decision, median over the plan's {len(actions)} actions: {typical:.2f} us"
        "  (target <= 20 us)",
        f"policy decision, worst case ({args.rules} rules all candidates, none matches): "
        f"{worst:.2f} us",
        "reproduce: .venv/bin/python bench/compile_bench.py"
        f" --steps {args.steps} --rules {args.rules} --repeat {args.repeat}",
    ]
    print("\n".join(report))


if __name__ == "__main__":
    main()
