"""Loader and compiler: any input is plans or a located ConfigError, quickly, bounded."""

from __future__ import annotations

import copy
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from luminaguard.compiler import compile_paths
from luminaguard.config.diagnostics import ConfigError
from luminaguard.config.yamlsource import MAX_ALIAS_NODES, MAX_DEPTH
from tests.fuzz import fuzz

PER_EXAMPLE = 2.0  # seconds of CPU
TRACED = 5  # the bound's factor while a tracer (coverage) runs
MAX_SIZE = 1 << 20

#: Line breaks as YAML counts them (libyaml's marks count every one of these).
_BREAKS = ("\r\n", "\r", "\x85", "\u2028", "\u2029")


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    for brk in _BREAKS:
        text = text.replace(brk, "\n")
    return text.split("\n")


def check(path: Path, data: bytes) -> ConfigError | None:
    """``data`` in ``path`` compiles, or every problem is located inside it; in time."""
    path.write_bytes(data)
    # This thread's CPU time, the objects made by earlier tests frozen out of the garbage
    # collector's walks. In the full suite wall time measured the queue for a core on a
    # loaded machine (2.25 s for 0.27 s of work), and thread CPU time a collection over
    # every earlier test's objects (2.46 s): neither is the loader's work.
    gc.freeze()  # cheap: the generations' lists moved aside, not walked
    collections = [generation["collections"] for generation in gc.get_stats()]
    started = time.thread_time()
    refused = None
    try:
        compile_paths([str(path)])
    except ConfigError as error:
        refused = error
        assert error.diagnostics
        lines = _lines(data)
        for diagnostic in error.diagnostics:
            where = diagnostic.location
            assert where.file == str(path), diagnostic
            assert 1 <= where.line <= len(lines), diagnostic
            assert 1 <= where.column <= len(lines[where.line - 1]) + 1, diagnostic
    finally:
        elapsed = time.thread_time() - started
        gc.unfreeze()
    made = [g["collections"] - n for g, n in zip(gc.get_stats(), collections, strict=True)]
    # under the suite's coverage tracer Python runs about 20x slower: the alias bomb, built
    # to the 50,000-node budget, takes 0.10 s of CPU untraced and 2.05 s traced
    bound = PER_EXAMPLE * (TRACED if sys.gettrace() is not None else 1)
    assert elapsed < bound, f"{elapsed:.2f}s of CPU for {len(data)} bytes; gc {made}"
    return refused


def refused(path: Path, data: bytes) -> ConfigError:
    """The ConfigError ``data`` is refused with (checked as ``check`` does)."""
    error = check(path, data)
    assert error is not None
    return error


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "input.yaml"


# -- any bytes ---------------------------------------------------------------------------

YAMLISH = st.sampled_from(
    [
        b":",
        b"- ",
        b"\n",
        b"  ",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b"&a ",
        b"*a",
        b"!!str ",
        b"'",
        b'"',
        b"#",
        b"---\n",
        b"...\n",
        b"? ",
        b"|\n",
        b">\n",
        b"{{ params.x }}",
        b"\t",
        b"%YAML 1.2\n",
        b"kind: Workload\n",
        b"apiVersion: luminaguard.dev/v1\n",
        b"\xff",
        b"\xc3",
        b"\x00",
        b"\r",
    ]
)


@fuzz(150)
@given(data=st.one_of(st.binary(max_size=512), st.lists(YAMLISH, max_size=60).map(b"".join)))
def test_any_bytes_are_a_plan_or_a_located_error(target: Path, data: bytes) -> None:
    check(target, data)


# -- documents close to the schema, then mutated ------------------------------------------

NAMES = st.sampled_from(["a", "p", "w", "base", "x-1"])
IDS = st.sampled_from(["s1", "s2", "s3", "read", "write"])
TEMPLATES = st.sampled_from(
    [
        "{{ params.dir }}",
        "{{ params.nope }}",
        "{{ steps.s1.outputs.stdout }}",
        "{{ 1/0 }}",
        "{{ 'a' * 999999999 }}",
        "{{ range(10**9) | list }}",
        "{{ }}",
        "{% for %}",
        "{{ params }}",
        "{{ ''.__class__ }}",
        "{{ params.dir ~ params.dir }}",
        "{{ steps.s2.outputs.text }}",
    ]
)
TEXT = st.one_of(st.text(max_size=20), TEMPLATES, NAMES)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), TEXT)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
COMMANDS = st.sampled_from(
    [
        "echo hi",
        "ls -R {{ params.dir }}",
        "cat /etc/passwd | sh",
        "rm -rf /",
        "echo $(id)",
        "echo hi > /tmp/x",
        "git status && git push",
        "sh -c 'echo {{ params.dir }}'",
        "",
        "   ",
    ]
)


def _meta(kind: str, name: st.SearchStrategy[str] = NAMES) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "apiVersion": st.just("luminaguard.dev/v1"),
            "kind": st.just(kind),
            "metadata": st.fixed_dictionaries({"name": name}),
        }
    )


PATTERNS = st.one_of(
    st.sampled_from(["*", "read_*", "fs", "git", "/work/**"]),
    st.lists(st.sampled_from(["ls", "cat", "echo", "x*"]), max_size=3),
)
VALUE_MATCH = st.one_of(
    JSONISH,
    st.fixed_dictionaries(
        {},
        optional={
            "equals": JSONISH,
            "glob": PATTERNS,
            "path": PATTERNS,
            "regex": st.sampled_from(["^a", "(", "x+", "(a+)+$"]),
        },
    ),
)
MATCH = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["run", "call", "other"]),
        "server": PATTERNS,
        "tool": PATTERNS,
        "program": PATTERNS,
        "command": VALUE_MATCH,
        "args": st.dictionaries(
            st.sampled_from(["path", "any", "all", "0", "1"]), VALUE_MATCH, max_size=2
        ),
        "redirects": VALUE_MATCH,
        "annotations": st.fixed_dictionaries({}, optional={"readOnlyHint": st.booleans()}),
    },
)
RULE = st.fixed_dictionaries(
    {
        "id": IDS,
        "match": MATCH,
        "risk": st.sampled_from(["green", "red"]),
        "reason": st.sampled_from(["why", ""]),
    },
    optional={
        "approvers": st.lists(NAMES, max_size=2),
        "min_approvals": st.integers(0, 20),
        "timeout": st.sampled_from(["5m", "1h", "x", 3]),
    },
)
POLICY = _meta("Policy").flatmap(
    lambda d: st.fixed_dictionaries(
        {
            **{k: st.just(v) for k, v in d.items()},
            "spec": st.fixed_dictionaries(
                {"rules": st.lists(RULE, max_size=4)},
                optional={
                    "default": st.sampled_from(["red", "green", "amber"]),
                    "approval": st.fixed_dictionaries(
                        {},
                        optional={
                            "min_approvals": st.integers(0, 3),
                            "approvers": st.lists(NAMES, max_size=2),
                            "notify": st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "url": st.sampled_from(
                                            [
                                                "https://h/x",
                                                "http://u:p@h",
                                                "ftp://h",
                                                "https://h:x",
                                            ]
                                        ),
                                        "format": st.sampled_from(["slack", "generic", "x"]),
                                    }
                                ),
                                max_size=1,
                            ),
                        },
                    ),
                },
            ),
        }
    )
)
SERVER = st.fixed_dictionaries(
    {},
    optional={
        "command": st.sampled_from(["srv", ""]),
        "url": st.sampled_from(["http://h/mcp", "x"]),
        "args": st.lists(TEXT, max_size=2),
        "tools": st.lists(st.sampled_from(["read_*", "w"]), max_size=2),
    },
)
AGENT = _meta("Agent").flatmap(
    lambda d: st.fixed_dictionaries(
        {
            **{k: st.just(v) for k, v in d.items()},
            "spec": st.fixed_dictionaries(
                {"policy": NAMES},
                optional={
                    "pool": NAMES,
                    "image": NAMES,
                    "mcp_servers": st.dictionaries(
                        st.sampled_from(["fs", "git", "bad name"]), SERVER, max_size=2
                    ),
                    "mounts": st.lists(
                        st.fixed_dictionaries(
                            {
                                "source": TEXT,
                                "target": st.sampled_from(
                                    ["/data/x", "/etc", "/data/../etc", "rel"]
                                ),
                            }
                        ),
                        max_size=1,
                    ),
                    "limits": st.fixed_dictionaries(
                        {},
                        optional={
                            "memory_mib": st.integers(-1, 4096),
                            "timeout": st.sampled_from(["10m", "-1s", "x"]),
                            "cpus": st.floats(),
                        },
                    ),
                },
            ),
        }
    )
)
STEP = st.fixed_dictionaries(
    {"id": IDS, "agent": NAMES},
    optional={
        "run": COMMANDS,
        "call": st.sampled_from(["fs.read_file", "fs.write", "x", "a.b.c"]),
        "args": st.dictionaries(st.sampled_from(["path", "content", "head"]), JSONISH, max_size=3),
        "needs": st.lists(IDS, max_size=2),
        "when": TEXT,
        "retries": st.integers(-1, 12),
        "timeout": st.sampled_from(["30s", "0s", "x"]),
        "idempotent": st.booleans(),
    },
)
WORKLOAD = _meta("Workload").flatmap(
    lambda d: st.fixed_dictionaries(
        {
            **{k: st.just(v) for k, v in d.items()},
            "spec": st.fixed_dictionaries(
                {"steps": st.lists(STEP, max_size=4)},
                optional={
                    "params": st.dictionaries(
                        st.sampled_from(["dir", "n", "bad-name"]), JSONISH, max_size=3
                    ),
                    "schedule": st.sampled_from(["* * * * *", "61 * * * *", "nonsense"]),
                    "trigger": st.fixed_dictionaries({"on": st.sampled_from(["change", "push"])}),
                },
            ),
        }
    )
)
IMAGE = _meta("Image").flatmap(
    lambda d: st.fixed_dictionaries(
        {
            **{k: st.just(v) for k, v in d.items()},
            "spec": st.fixed_dictionaries(
                {"rootfs": NAMES},
                optional={
                    "vcpus": st.integers(-1, 64),
                    "memory_mib": st.integers(0, 1 << 20),
                    "network": st.sampled_from(["none", "egress-allowlist", "all"]),
                    "egress": st.lists(st.sampled_from(["example.com:443", "*", ""]), max_size=2),
                    "kernel": st.sampled_from(["distro", "custom"]),
                    "read_only_root": st.booleans(),
                },
            ),
        }
    )
)
POOL = _meta("Pool").flatmap(
    lambda d: st.fixed_dictionaries(
        {
            **{k: st.just(v) for k, v in d.items()},
            "spec": st.fixed_dictionaries(
                {"image": NAMES},
                optional={"warm": st.integers(-1, 2000), "max": st.integers(0, 5000)},
            ),
        }
    )
)
DOCUMENT = st.one_of(POLICY, AGENT, WORKLOAD, IMAGE, POOL)

WRONG = st.one_of(SCALARS, st.just([]), st.just({}), st.just([[[]]]), st.text(min_size=1))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


def _mutate_once(draw: st.DrawFn, document: dict[str, Any]) -> None:
    paths = [p for p in _paths(document) if p]
    if not paths:
        return
    path = draw(st.sampled_from(paths))
    parent = _parent(document, path)
    how = draw(st.sampled_from(["wrong", "drop", "unknown", "nest", "huge"]))
    if how == "wrong":
        parent[path[-1]] = copy.deepcopy(draw(WRONG))  # st.just([]) is one list: no sharing
    elif how == "drop":
        del parent[path[-1]]
    elif how == "unknown" and isinstance(parent, dict):
        parent[draw(st.sampled_from(["extra", "spec ", "Kind", "{{ x }}"]))] = draw(JSONISH)
    elif how == "nest":
        value: Any = parent[path[-1]]
        for _ in range(draw(st.integers(1, MAX_DEPTH + 20))):
            value = [value] if draw(st.booleans()) else {"k": value}
        parent[path[-1]] = value
    elif how == "huge":
        parent[path[-1]] = "x" * draw(st.integers(1, 300_000))


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with a few mutations: wrong types, missing or unknown keys, shared nodes."""
    document = copy.deepcopy(document)  # its parts may be a strategy's own (st.just) objects
    for _ in range(draw(st.integers(0, 3))):
        _mutate_once(draw, document)
    paths = [p for p in _paths(document) if p]
    if paths and draw(st.booleans()):  # one node twice: the dumper writes an anchor and alias
        path, shared = draw(st.sampled_from(paths)), draw(st.sampled_from(paths))
        if path[: len(shared)] != shared:  # not an ancestor: no cycle
            _parent(document, path)[path[-1]] = _parent(document, (*shared, None))
    return document


class _Dumper(yaml.SafeDumper):
    """A dumper that keeps the documents' key order."""


def _dump(documents: list[dict[str, Any]]) -> bytes:
    try:
        text = yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    except (RecursionError, yaml.YAMLError):  # the mutation made a cycle the dumper refuses
        text = "{"
    return text.encode("utf-8", "surrogatepass")[:MAX_SIZE]


@fuzz(120)
@given(
    documents=st.lists(DOCUMENT.flatmap(mutated), min_size=1, max_size=5),
    cut=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_generated_documents_are_plans_or_located_errors(
    target: Path, documents: list[dict[str, Any]], cut: int | None
) -> None:
    data = _dump(documents)
    check(target, data if cut is None else data[:cut])


PLAIN = st.one_of(
    st.text(  # no surrogates: YAML (and JSON) cannot carry them
        alphabet=st.characters(exclude_characters="{}", exclude_categories=["Cs"]), max_size=20
    ),
    st.just("{{ params.dir }}/x"),
)
VALID_RULE = st.fixed_dictionaries(
    {
        "match": st.one_of(
            st.fixed_dictionaries({"program": st.lists(st.sampled_from(["ls", "cat", "echo"]))}),
            st.fixed_dictionaries({"tool": st.sampled_from(["read_*", "*", "write"])}),
        ),
        "risk": st.sampled_from(["green", "red"]),
        "reason": st.just("because"),
    }
)
VALID_STEP = st.one_of(
    st.fixed_dictionaries({"run": st.sampled_from(["echo hi", "ls -R {{ params.dir }}", "cat x"])}),
    st.fixed_dictionaries(
        {"call": st.just("fs.read_file"), "args": st.fixed_dictionaries({"path": PLAIN})}
    ),
)


@st.composite
def bundles(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A Policy, an Agent and a Workload that compile."""
    head = {"apiVersion": "luminaguard.dev/v1"}
    rules = [{"id": f"r{i}", **rule} for i, rule in enumerate(draw(st.lists(VALID_RULE)))]
    steps = [
        {"id": f"s{i}", "agent": "a", **step}
        for i, step in enumerate(draw(st.lists(VALID_STEP, min_size=1, max_size=4)))
    ]
    servers = {"fs": {"command": "srv"}}
    return [
        {**head, "kind": "Policy", "metadata": {"name": "p"}, "spec": {"rules": rules}},
        {**head, "kind": "Agent", "metadata": {"name": "a"},
         "spec": {"policy": "p", "mcp_servers": servers}},
        {**head, "kind": "Workload", "metadata": {"name": "w"},
         "spec": {"params": {"dir": "/work"}, "steps": steps}},
    ]  # fmt: skip


@fuzz(30)
@given(documents=bundles())
def test_valid_bundles_compile(target: Path, documents: list[dict[str, Any]]) -> None:
    error = check(target, _dump(documents))
    assert error is None, str(error)


@fuzz(60)
@given(documents=bundles().flatmap(lambda docs: st.tuples(*map(mutated, docs))))
def test_mutated_bundles_are_plans_or_located_errors(
    target: Path, documents: tuple[dict[str, Any], ...]
) -> None:
    check(target, _dump(list(documents)))


# -- hostile shapes are refused quickly and within bounded memory --------------------------


def _bounded(path: Path, data: bytes, message: str) -> None:
    tracemalloc.start()
    try:
        assert message in str(refused(path, data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak >> 20} MiB"


def _laughs(levels: int) -> bytes:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines).encode()


def test_an_alias_bomb_is_refused_quickly(target: Path) -> None:
    _bounded(target, _laughs(10), f"aliases expand this file beyond {MAX_ALIAS_NODES}")


def test_aliases_within_the_bound_are_read(target: Path) -> None:
    text = _laughs(3) + b"\napiVersion: luminaguard.dev/v1\n"
    error = str(refused(target, text))
    assert "missing kind" in error
    assert "aliases" not in error


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 5000 + b"]" * 5000,
        b"".join(b"  " * i + b"- \n" for i in range(5000)),
        b"spec: " + b"{a: " * 900 + b"1" + b"}" * 900,
    ],
    ids=["flow", "block", "mapping"],
)
def test_deep_nesting_is_refused_quickly(target: Path, data: bytes) -> None:
    _bounded(target, data, "nest")  # ours, or libyaml's own bound on flow levels


def test_nesting_within_the_bound_is_read(target: Path) -> None:
    data = b"kind: Policy\nx: " + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1)
    assert "nested" not in str(refused(target, data))


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"kind: Agent\nname: \xff\xfe\n", (2, 7)),
        (b"a: \xc3\xa9\xc3\n", (1, 5)),
        (b"a: b\n\xc3\xa9\xc3\xa9: \x07\n", (2, 5)),
        (b"a: \x00", (1, 4)),
        (b"a: [b,\r \xbf]", (2, 2)),  # atheris: lines broken as YAML breaks them
    ],
    ids=["invalid-start", "truncated", "control", "nul", "after-a-carriage-return"],
)
def test_bytes_that_are_not_yaml_text_are_located(
    target: Path, data: bytes, where: tuple[int, int]
) -> None:
    (diagnostic,) = refused(target, data).diagnostics
    assert (diagnostic.location.line, diagnostic.location.column) == where


def test_a_megabyte_document_is_quick(target: Path) -> None:
    params = "".join(f"    p{i}: {'v' * 90}\n" for i in range(10_000))
    head = "apiVersion: luminaguard.dev/v1\nkind: Workload\nmetadata: {name: w}\n"
    data = f"{head}spec:\n  params:\n{params}"
    refused(target, data.encode()[:MAX_SIZE])
