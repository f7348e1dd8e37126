"""Long fuzzing runs of the loader and compiler: any bytes as a YAML file.

The property is the test suite's (tests/fuzz/test_loader_fuzz.py): ``compile_paths``
returns plans or raises a ``ConfigError`` whose every diagnostic is located inside the
input; anything else is a crash. With atheris (``pip install -e '.[bench]'``) it is
coverage-guided by libFuzzer, whose flags pass through, e.g.:

    .venv/bin/python bench/fuzz_loader.py -max_total_time=600 -timeout=2 \\
        -rss_limit_mb=1024 -max_len=1048576 /tmp/corpus examples policies workloads

(a corpus folder first: libFuzzer writes new inputs to it; the others seed it). Without
atheris it falls back to hypothesis' ``fuzz_one_input`` on random and mutated seed
bytes for ``--seconds`` (default 60), reporting the first failing input (for
``fuzz_one_input``, the bytes hypothesis drew its choices from).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["luminaguard"]):
        from luminaguard.compiler import compile_paths
        from luminaguard.config.diagnostics import ConfigError
else:
    from luminaguard.compiler import compile_paths
    from luminaguard.config.diagnostics import ConfigError

TARGET = Path(tempfile.mkdtemp(prefix="lg-fuzz-")) / "input.yaml"
BREAKS = ("\r\n", "\r", "\x85", "\u2028", "\u2029")
PER_INPUT = 2.0  # seconds


def check(data: bytes) -> None:
    """The property (see module doc); an AssertionError or any other exception is a find."""
    TARGET.write_bytes(data)
    started = time.monotonic()
    try:
        compile_paths([str(TARGET)])
    except ConfigError as error:
        text = data.decode("utf-8", "replace")
        for brk in BREAKS:
            text = text.replace(brk, "\n")
        lines = text.split("\n")
        for diagnostic in error.diagnostics:
            where = diagnostic.location
            assert where.file == str(TARGET), diagnostic
            assert 1 <= where.line <= len(lines), diagnostic
            assert 1 <= where.column <= len(lines[where.line - 1]) + 1, diagnostic
    elapsed = time.monotonic() - started
    assert elapsed < PER_INPUT, f"{elapsed:.2f}s for {len(data)} bytes"


def _seeds() -> list[bytes]:
    found = [p.read_bytes() for d in ("examples", "policies", "workloads") for p in
             sorted((ROOT / d).rglob("*.yaml"))]  # fmt: skip
    return found or [b"apiVersion: luminaguard.dev/v1\nkind: Policy\n"]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        how = rng.randrange(4)
        at = rng.randint(0, len(buffer))
        if how == 0 and buffer:
            del buffer[at : at + rng.randint(1, 16)]
        elif how == 1:
            buffer[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif how == 2:
            buffer[at:at] = rng.choice([b"&a ", b"*a", b"{{ ", b" }}", b"[", b"{", b"\n- ",
                                        b": ", b"'", b'"', b"\t", b"\xff", b"---\n"])  # fmt: skip
        elif buffer:
            start = rng.randrange(len(buffer))
            buffer[at:at] = buffer[start : start + rng.randint(1, 64)]
    return bytes(buffer[: 1 << 20])


def fallback(seconds: float) -> int:
    """Random and mutated inputs through hypothesis' ``fuzz_one_input`` for ``seconds``."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(database=None, deadline=None)
    @given(st.binary(max_size=1 << 20))
    def property_holds(data: bytes) -> None:
        check(data)

    fuzz_one_input = property_holds.hypothesis.fuzz_one_input  # type: ignore[attr-defined]
    rng, seeds = random.Random(int.from_bytes(os.urandom(8))), _seeds()
    ends, count = time.monotonic() + seconds, 0
    while time.monotonic() < ends:
        # half hypothesis' own choices from random bytes, half mutated seeds checked as they are
        data = _mutate(rng, rng.choice(seeds)) if count % 2 else os.urandom(rng.randint(1, 4096))
        try:
            if count % 2:
                check(data)
            else:
                fuzz_one_input(data)
        except Exception as exc:
            print(f"FOUND after {count} inputs: {type(exc).__name__}: {exc}\n{data!r}")
            return 1
        count += 1
    print(f"{count} inputs in {seconds:.0f} s, nothing found (hypothesis fuzz_one_input)")
    return 0


def test_one_input(data: bytes) -> None:
    """The atheris entry point."""
    check(data)


def main() -> int:
    if atheris is None:
        seconds = 60.0
        if "--seconds" in sys.argv:
            seconds = float(sys.argv[sys.argv.index("--seconds") + 1])
        print("atheris is not installed: falling back to hypothesis' fuzz_one_input")
        return fallback(seconds)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
