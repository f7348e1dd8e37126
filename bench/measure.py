"""``make bench``: run every benchmark, then write the README's Measured table from them.

Each bench prints its report (shown as it runs, and kept in ``bench/results/NAME.txt``)
and one ``figure:`` line per headline figure (``bench/figures.py``). The table between
the README's ``measured`` markers is rewritten from the kept outputs' figure lines
alone, with the machine they were measured on: no figure in it that a command did not
print. ``--only NAME...`` runs those benches again and keeps the others' last outputs.
A bench that fails is named in the table and makes this exit 1.
Run: .venv/bin/python bench/measure.py [--only NAME ...] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from figures import PREFIX

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"

#: name -> arguments after ``python bench/NAME.py`` (what ``make bench`` runs)
BENCHES: dict[str, list[str]] = {
    "startup_bench": [],
    "compile_bench": ["--growth", "1000,10000,100000"],
    "policy_bench": [],
    "sandbox_bench": [],
    "scheduler_bench": ["--sizes", "100,1000,10000"],
    "mcp_bench": [],
    "vm_bench": [],
    "vm_bench --concurrent": ["--concurrent", "8", "--rounds", "5"],
    "serve_bench": [],
    "reconcile_bench": [],
    "load": ["--agents", "100", "200", "500"],
    "chaos": ["--trials", "200"],
}


def machine() -> str:
    """This machine, as the table's heading says it."""
    model = "unknown CPU"
    memory = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / (1 << 20):.0f} GiB"
    sys.path.insert(0, str(ROOT))
    from luminaguard.hypervisor.vm.kvm import cpu_flags, hardware_kvm

    kvm = "hardware KVM" if hardware_kvm() else "no hardware virtualization (QEMU under TCG)"
    guest = ", itself a virtual machine" if "hypervisor" in cpu_flags() else ""
    return (
        f"{os.cpu_count()} cores of an {model}{memory}, Linux {platform.release()}{guest},"
        f" Python {platform.python_version()}, {kvm}"
    )


def result_file(name: str) -> Path:
    """Where a bench's last output is kept."""
    return RESULTS / f"{name.replace(' --', '-')}.txt"


def command_of(name: str) -> str:
    """The command line of a bench, as the table names it."""
    return " ".join([f"bench/{name.split()[0]}.py", *BENCHES[name]])


def run(name: str) -> bool:
    """Run one bench, echoing its output and keeping it; whether it passed."""
    command = [sys.executable, str(ROOT / command_of(name).split()[0]), *BENCHES[name]]
    print(f"\n=== {command_of(name)}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    ok = process.wait() == 0
    RESULTS.mkdir(exist_ok=True)
    result_file(name).write_text("".join(lines))
    print(f"=== {name}: exit {process.returncode}, {time.monotonic() - started:.0f} s", flush=True)
    return ok


def figures_of(name: str) -> list[dict[str, object]]:
    """The figure lines of a bench's last kept output."""
    path = result_file(name)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    figures = [json.loads(line[len(PREFIX) :]) for line in lines if line.startswith(PREFIX)]
    for figure in figures:
        figure["command"] = command_of(name)
    return figures


def table(figures: list[dict[str, object]], failed: list[str], when: str) -> str:
    """The Markdown table between the README's markers."""
    rows = [
        f"Measured by `make bench` on {when}: {machine()}. Each figure is printed by the",
        "command named in its row, with its peer measured in the same run.",
        "",
        "| what | LuminaGuard | peer, same run | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for figure in figures:
        met = {True: "yes", False: "**no**", None: "—"}[figure["met"]]  # type: ignore[index]
        rows.append(
            f"| {figure['what']} (`{figure['command']}`) | {figure['ours']} |"
            f" {figure['peer'] or '—'} | {figure['target']} | {met} |"
        )
    rows += [f"| `{name}` failed: see bench/results/ | — | — | — | **no** |" for name in failed]
    return "\n".join(rows)


def write_readme(text: str) -> None:
    readme = README.read_text()
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} markers")
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="bench names to run again (default: all)")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    unknown = set(args.only or []) - set(BENCHES)
    if unknown:
        parser.error(f"--only: not benches: {', '.join(sorted(unknown))}; of {', '.join(BENCHES)}")
    failed = [name for name in BENCHES if (not args.only or name in args.only) and not run(name)]
    figures = [figure for name in BENCHES for figure in figures_of(name)]
    text = table(figures, failed, time.strftime("%Y-%m-%d"))
    print("\n" + text)
    if not args.no_readme:
        write_readme(text)
        print("\nREADME.md: Measured table rewritten")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
