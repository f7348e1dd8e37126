"""Compile grows linearly with the steps: the quadratic (every step's ancestors) stays out.

Times are CPU time of this process (``time.process_time``), the least of three runs, so
that other work on a shared machine does not decide the result; memory is the peak of
tracemalloc. The policy engine is built again for each run (cold caches at both
sizes). Ten times the steps may cost at most 12 times the time and 15 times the peak
memory.
"""

from __future__ import annotations

import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from luminaguard.compiler import compile_workload
from luminaguard.compiler.compile import Bundle, load_checked
from luminaguard.compiler.dag import StepGraph
from luminaguard.compiler.lock import LockedServer, LockedTool, ToolLock

HEADER = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: reads, match: {tool: "read_*"}, risk: green, reason: reads}
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  mcp_servers:
    fs: {command: srv}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
"""

SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["path"],
}


def _lock() -> ToolLock:
    tool = LockedTool(
        annotations={"readOnlyHint": True},
        description_sha256="0" * 64,
        input_schema_sha256="1" * 64,
        input_schema=SCHEMA,
    )
    return ToolLock(servers={"a/fs": LockedServer(tools={"read_file": tool})})


def _step(i: int, needs: list[str]) -> str:
    """A call step every other step; one in 50 uses the output of a step needed indirectly."""
    need = f", needs: [{', '.join(needs)}]" if needs else ""
    if i % 2:
        args = f'{{path: "/r/{i}", n: {i}}}'
        return f"    - {{id: s{i}, agent: a, call: fs.read_file, args: {args}{need}}}\n"
    uses = " {{ steps.s0.outputs.stdout }}" if i % 50 == 26 else ""
    return f'    - {{id: s{i}, agent: a, run: "echo {i}{uses}"{need}}}\n'


def chain(n: int) -> str:
    """Each step needs the one before and the one seven before."""
    return "".join(
        _step(i, [f"s{i - 1}"] + ([f"s{i - 7}"] if i >= 7 else []) if i else []) for i in range(n)
    )


def wide(n: int) -> str:
    """s0 fans out to the middle steps, and the last one needs them all."""
    middle = "".join(_step(i, ["s0"]) for i in range(1, n - 1))
    last = _step(n - 1, [f"s{i}" for i in range(1, n - 1)])
    return _step(0, []) + middle + last


def _templated_step(i: int) -> str:
    """One or two templates a step: ``params`` and the output of the step before."""
    need = f", needs: [s{i - 1}]" if i else ""
    uses = f" {{{{ steps.s{i - 1}.outputs.{'text' if i % 2 == 0 else 'stdout'} }}}}" if i else ""
    if i % 2:
        args = f'{{path: "{{{{ params.root }}}}/{i}{uses}", n: {i}}}'
        return f"    - {{id: s{i}, agent: a, call: fs.read_file, args: {args}{need}}}\n"
    return f'    - {{id: s{i}, agent: a, run: "echo {{{{ params.root }}}}/{i}{uses}"{need}}}\n'


def templated(n: int) -> str:
    """A chain whose every step's command or arguments are templates (template-heavy)."""
    return "".join(_templated_step(i) for i in range(n)) + "  params: {root: /r}\n"


def _bundle(tmp_path: Path, steps: str, n: int) -> Bundle:
    path = tmp_path / f"w{n}.yaml"
    path.write_text(HEADER + steps)
    return load_checked([str(path)], _lock())


def _compile(bundle: Bundle, times: int = 1) -> None:
    """Compile cold: the policy engine's caches hold every command of a small plan only."""
    for _ in range(times):
        bundle._engines.clear()
        plan, problems = compile_workload(bundle, "w")
        assert plan is not None, problems


def _cpu_once(function: Callable[[], None]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        function()
        return time.process_time() - start
    finally:
        gc.enable()


def _cpu(small: Callable[[], None], large: Callable[[], None]) -> tuple[float, float]:
    """The least CPU time of three runs of each, interleaved, the collector off while timing.

    Interleaved, and the small size compiled ten times a run so that a run of either
    lasts as long, both sizes meet the same neighbours on a shared machine (a short run
    alone can slip between them, which made linear code look 13 times slower). A full
    collection walks every object of the process (pytest's, the other bundle's): its
    cost is the test process's, not the compiler's.
    """
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(3):
        samples[0].append(_cpu_once(small))
        samples[1].append(_cpu_once(large))
    return min(samples[0]), min(samples[1])


def _calls(function: Callable[[], None]) -> int:
    """Every call the function makes, Python and C: its work, counted, whatever the load."""
    count = 0

    def counted(frame: object, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    gc.collect()
    gc.disable()  # no finalizer's calls in the count
    sys.setprofile(counted)
    try:
        function()
    finally:
        sys.setprofile(None)
        gc.enable()
    return count


def _peak(function: Callable[[], None]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize("shape", [chain, wide, templated])
def test_ten_times_the_steps_cost_at_most_twelve_times_the_time(
    tmp_path: Path, shape: Callable[[int], str]
) -> None:
    """Three measures of the growth, from 1,000 steps to 10,000.

    - the calls made (Python and C), counted: the work, the same on a busy machine or an
      idle one: at most 12 times;
    - the peak of traced memory (the quadratic kept every step's ancestors): at most 15
      times;
    - CPU time, the least of three interleaved runs: at most 30 times. CPU time is the
      target, but on an oversubscribed machine the larger working set loses more to the
      neighbours' use of the caches (linear code measured 15 times under ``stress-ng``,
      10 to 11 idle): this bound only catches a gross regression (a quadratic is 100
      times); ``bench/compile_bench.py --growth`` prints the ratios.
    """
    small, large = (_bundle(tmp_path, shape(n), n) for n in (1000, 10_000))
    _compile(small)  # warm: imports, policy engine, schema cache
    small_calls, large_calls = _calls(lambda: _compile(small)), _calls(lambda: _compile(large))
    assert large_calls <= 12 * small_calls, f"calls: {small_calls}, then {large_calls}"
    small_peak, large_peak = _peak(lambda: _compile(small)), _peak(lambda: _compile(large))
    assert large_peak <= 15 * small_peak, f"peak {small_peak} B, then {large_peak} B"
    ten_small_cpu, large_cpu = _cpu(lambda: _compile(small, times=10), lambda: _compile(large))
    small_cpu = ten_small_cpu / 10
    assert large_cpu <= 30 * small_cpu, f"1,000 steps {small_cpu:.3f} s, then {large_cpu:.3f} s"


def test_plain_templates_are_neither_parsed_nor_compiled_by_jinja2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text and ``{{ a.b.c }}`` lookups are read and rendered without jinja2's parser
    and code generator (about 1 ms a template); a filter still goes through them."""
    from luminaguard.config import render

    used: list[str] = []
    for environment in (render.ENVIRONMENT, render.COMMAND_ENVIRONMENT):
        for name in ("parse", "from_string"):
            real = getattr(environment, name)
            monkeypatch.setattr(
                environment, name, lambda *a, _r=real, _n=name, **k: used.append(_n) or _r(*a, **k)
            )
    render.string_template.cache_clear()
    render.command_template.cache_clear()
    bundle = _bundle(tmp_path, templated(300), 300)
    _compile(bundle)
    assert used == []
    filtered = templated(3).replace("outputs.stdout }}", "outputs.stdout | trim }}")
    _compile(_bundle(tmp_path, filtered, 3))
    assert used.count("parse") == 1


def test_templates_cost_about_what_plain_steps_do(tmp_path: Path) -> None:
    """Calls counted (deterministic): 1,000 template-heavy steps, loaded and compiled, make
    at most 1.5 times the calls of 1,000 plain ones (jinja2 parsing and compiling each
    template made 4.3 times; now 0.98)."""
    _compile(_bundle(tmp_path, chain(100), 100))  # warm: imports, caches
    plain = _calls(lambda: _compile(_bundle(tmp_path, chain(1000), 1000)))
    heavy = _calls(lambda: _compile(_bundle(tmp_path, templated(1000), 1000)))
    assert heavy <= 1.5 * plain, f"plain steps: {plain} calls; template-heavy: {heavy}"


def test_compile_loads_without_a_node_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values come straight from the parser's events: nothing composes a node tree."""
    from luminaguard.config import yamlsource

    def composed(*args: object) -> None:
        raise AssertionError("a node tree was composed")

    monkeypatch.setattr(yamlsource._CoreSchemaLoader, "get_node", composed)
    monkeypatch.setattr(yamlsource._CoreSchemaLoader, "compose_node", composed, raising=False)
    _compile(_bundle(tmp_path, templated(50), 50))


def test_each_locked_schema_is_compiled_once(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, chain(200), 200)
    _compile(bundle)
    assert len(bundle.schemas._compiled) == 1


def _ancestors(graph: StepGraph) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name in graph.order:
        found[name] = set(graph.needs[name]).union(*(found[n] for n in graph.needs[name]))
    return found


@pytest.mark.parametrize("seed", range(5))
def test_unneeded_agrees_with_full_ancestor_sets(seed: int) -> None:
    chooser = random.Random(seed)
    names = [f"n{i}" for i in range(120)]
    needs = {
        name: tuple(chooser.sample(names[:i], min(i, chooser.randint(0, 3))))
        for i, name in enumerate(names)
    }
    graph = StepGraph(names, needs)
    queries = {(chooser.choice(names), chooser.choice([*names, "elsewhere"])) for _ in range(3000)}
    ancestors = _ancestors(graph)
    expected = {(step, ref) for step, ref in queries if ref not in ancestors[step]}
    assert graph.unneeded(queries) == expected


def test_unneeded_answers_more_targets_than_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("luminaguard.compiler.dag._TARGETS_PER_PASS", 3)
    names = [f"n{i}" for i in range(30)]
    graph = StepGraph(names, {name: (names[i - 1],) if i else () for i, name in enumerate(names)})
    queries = {(names[-1], name) for name in names[:-2]} | {(names[5], names[20])}
    assert graph.unneeded(queries) == {(names[5], names[20])}
