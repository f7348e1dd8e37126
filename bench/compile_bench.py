"""Compile a generated 1,000-step workload with a 50-rule policy; time policy decisions.

Targets (../shared/DESIGN.md): compile <= 1 s; decision <= 20 us median (50 rules).
Run: .venv/bin/python bench/compile_bench.py [--steps N] [--rules N] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from luminaguard.compiler import compile_paths
from luminaguard.config.models import PolicySpec
from luminaguard.policy import Action, PolicyEngine

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
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
