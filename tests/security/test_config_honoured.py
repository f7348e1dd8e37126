"""Configuration that validates is configuration that takes effect, or it is refused.

``Image.kernel``, ``Image.read_only_root`` and ``Pool.refill`` were validated and never
read: ``read_only_root: false`` promised a writable root the guest never had, a custom
kernel booted the distribution's, and ``refill: cold`` still restored snapshot clones.
Each value nothing implements is now refused at its FILE:LINE:COL, exit 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CliRunner, Writer

IMAGE = """\
apiVersion: luminaguard.dev/v1
kind: Image
metadata: {name: img}
spec:
  rootfs: agent-base
%s---
apiVersion: luminaguard.dev/v1
kind: Pool
metadata: {name: warm}
spec:
  image: img
%s"""

CASES = {
    # field: (image lines, pool lines, line, column, phrase)
    "kernel": ("  kernel: my-own-6.12\n", "", 6, 11, "spec.kernel: kernel 'my-own-6.12'"),
    "read_only_root": (
        "  read_only_root: false\n",
        "",
        6,
        19,
        "spec.read_only_root: a writable root is not available",
    ),
    "refill": ("", "  refill: cold\n", 12, 11, "spec.refill: 'cold' refill is not available"),
}


@pytest.mark.parametrize("field", sorted(CASES))
def test_a_field_nothing_implements_is_refused_where_it_is_written(
    field: str, cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: a config asks for a guest kernel, a writable root or cold refills; it was
    accepted and silently ignored. Now refused with a located error, exit 1.

    Fixed by ee96a74 "Image.kernel, Image.read_only_root, Pool.refill: refuse what nothing
    implements".
    """
    image, pool, line, column, phrase = CASES[field]
    write("infra.yaml", IMAGE % (image, pool))
    result = cli("validate", "infra.yaml", cwd=tmp_path)
    assert result.code == 1
    first = result.err.splitlines()[0]
    assert first.startswith(f"infra.yaml:{line}:{column}: error: "), result.err
    assert phrase in first


def test_the_values_that_are_implemented_still_validate(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    image = "  kernel: debian-cloud\n  read_only_root: true\n"
    write("infra.yaml", IMAGE % (image, "  refill: snapshot\n"))
    result = cli("validate", "infra.yaml", cwd=tmp_path)
    assert result.code == 0, result.err
