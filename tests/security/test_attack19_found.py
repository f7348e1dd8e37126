"""Attack round 19: step outputs given to templates, output draining, the sandbox zygote."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminaguard.scheduler.states import StepState
from luminaguard.scheduler.store import RunStore
from tests.conftest import CliRunner, Writer

UNNEEDED = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: talk
      match: {program: [echo, sleep]}
      risk: green
      reason: prints
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  limits: {timeout: 20s}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - {id: secret, agent: a, run: "echo TOPSECRET"}
    - {id: slow, agent: a, run: "sleep 2"}
    - id: leak
      agent: a
      needs: [slow]
      run: >-
        echo {{ steps.slow.outputs.exit_code }}
        {% for k in steps %}{{ k }}={{ steps[k].outputs.stdout }}{% endfor %}
"""


@pytest.mark.usefixtures("sandbox")
def test_a_template_reads_only_the_steps_its_step_needs(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """The compiler checks that the steps a template names (``steps.ID``, ``steps['ID']``)
    are steps its step needs. A template that names one of its needs (so it renders at run
    time) and also looks steps up by a computed key (``steps[k]`` over ``steps``) read the
    outputs of any step that had happened to succeed by then: ``leak`` (needing only
    ``slow``) printed ``secret``'s TOPSECRET, a step it does not need, by timing. The
    runner's view of the outputs now holds only the step's needs, direct or not."""
    state = tmp_path / "state"
    path = write("w.yaml", UNNEEDED)
    result = cli("run", str(path), "--state", str(state), "--run-id", "r")
    store = RunStore(state)
    try:
        steps = store.steps("r")
    finally:
        store.close()
    assert steps["secret"].outputs["stdout"] == "TOPSECRET\n", result.out + result.err
    assert "TOPSECRET" not in str(steps["leak"].outputs.get("stdout", ""))


def test_the_steps_view_hides_every_step_not_needed() -> None:
    """Each way a template reaches the view (a name, a computed key, ``get``, ``values``,
    iteration, ``in``) sees only the needed steps."""
    from luminaguard.config.render import render_text
    from luminaguard.scheduler.store import StepRecord
    from luminaguard.scheduler.templates import StepOutputs, needed_steps

    records = {
        name: StepRecord(name, StepState.SUCCEEDED, 1, None, {"stdout": name.upper()}, None)
        for name in ("a", "b", "secret")
    }
    visible = needed_steps({"c": ["b"], "b": ["a"], "a": [], "secret": []}, "c")
    assert visible == {"a", "b"}
    context = {"steps": StepOutputs(records, visible)}
    for text in (
        "{% for k in steps %}{{ steps[k].outputs.stdout }}{% endfor %}",
        "{% for v in steps.values() %}{{ v.outputs.stdout }}{% endfor %}",
        "{{ steps.get('secret') }}{{ 'secret' in steps }}{{ steps | length }}",
    ):
        assert "SECRET" not in str(render_text(text, context))


HELD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - id: all
      match: {program: ["*"]}
      risk: green
      reason: anything
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec:
  policy: p
  limits: {timeout: 20s}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {name: w}
spec:
  steps:
    - id: holder
      agent: a
      run: >-
        python3 -c 'import socket,os,time,array;
        s=socket.socket(socket.AF_UNIX); s.bind("/work/sock"); s.listen();
        c,_=s.accept(); m,a,f,_=c.recvmsg(1,socket.CMSG_LEN(4));
        fd=array.array("i",a[0][2])[0]; time.sleep(4); os.write(fd,b"INJECTED\\\\n");
        time.sleep(8)'
    - id: victim
      agent: a
      run: >-
        python3 -c 'import socket,time,array; time.sleep(0.5);
        c=socket.socket(socket.AF_UNIX); c.connect("/work/sock");
        c.sendmsg([b"x"],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array("i",[1]))]);
        print("victim done")'
"""


@pytest.mark.usefixtures("sandbox")
def test_a_step_ends_with_its_process_not_with_who_holds_its_output(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Two steps of one agent run at once and share /work. ``victim`` hands its stdout over
    a Unix socket to ``holder`` and exits at once. Its output was read to its end, not to
    the exit: ``victim`` stayed running as long as ``holder`` kept the pipe (to its
    timeout, then failed as timed out though it exited 0), and what ``holder`` wrote
    seconds after ``victim`` ended was recorded as ``victim``'s output, to be fed to the
    steps needing it. The output is now awaited DRAIN_SECONDS at most after the exit."""
    state = tmp_path / "state"
    path = write("w.yaml", HELD)
    result = cli("run", str(path), "--state", str(state), "--run-id", "r")
    store = RunStore(state)
    try:
        victim = store.steps("r")["victim"]
    finally:
        store.close()
    # (holder's late write meets a closed pipe: holder fails, which is its own business)
    assert victim.state == StepState.SUCCEEDED, result.out + result.err
    assert victim.outputs["stdout"] == "victim done\n"
