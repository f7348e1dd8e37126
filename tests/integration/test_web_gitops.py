"""The page's Source panel, for a real ``luminaguard serve --source FOLDER``, in chromium.

The browser and page fixtures are ``test_web``'s; the module's server follows a folder
that each test writes to (it ends each test as it found it: Ready). The page is never
reloaded: what the reconciler does reaches it through the event stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_web
from tests.integration.conftest import sandbox_problem
from tests.server.live import LiveServer, wait_until

browser = test_web.browser
page = test_web.page
sign_in = test_web.sign_in
ARTIFACTS = test_web.ARTIFACTS

POLICY = """\
apiVersion: luminaguard.dev/v1
kind: Policy
metadata: {name: p}
spec:
  rules:
    - {id: echo, match: {program: [echo]}, risk: green, reason: harmless}
"""
AGENT = """\
apiVersion: luminaguard.dev/v1
kind: Agent
metadata: {name: a}
spec: {policy: p}
"""
#: A flow mapping left open: a YAML syntax error (found at line 4).
BROKEN = POLICY.replace("metadata: {name: p}", "metadata: {name: q").replace(
    "reason: harmless}", "reason: harmless"
)
FIXED = POLICY.replace("{name: p}", "{name: q}")
MARKUP = "<img src=x onerror=window.pwned=1>"
#: Markup in a string the schema refuses: the reason quotes it, and its line.
HOSTILE = POLICY.replace("{name: p}", "{name: h}").replace("risk: green", f'risk: "{MARKUP}"')


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("source")
    (made / "policy.yaml").write_text(POLICY)
    (made / "agent.yaml").write_text(AGENT)
    return made


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Iterator[LiveServer]:
    """A server following ``source`` (overrides the conftest's: the page fixtures use it)."""
    problem = sandbox_problem()
    if problem:
        pytest.skip(problem)
    base = tmp_path_factory.mktemp("serve")
    extra = ("--source", str(source), "--interval", "600")
    server = LiveServer(base / "state", base / "workspace", extra=extra)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            assert server.stop() == 0, server.output()


def status(server: LiveServer) -> dict[str, Any]:
    reply = server.get("/v1/gitops")
    assert reply.status == 200, reply
    found: dict[str, Any] = reply.json()
    return found


def ready(server: LiveServer) -> str:
    """The applied revision, once the source is Ready."""
    found: str = wait_until(
        "the source Ready",
        lambda: (s := status(server)["source"]) and s["condition"] == "Ready" and s["revision"],
    )
    return found


def short(revision: str) -> str:
    """A revision as the page shows it: a folder's ``sha256:HEX`` as 12 hex digits."""
    return revision.split(":")[-1][:12]


def condition(name: str) -> str:
    return f"#source-condition[data-condition='{name}']"


def row(kind: str, name: str) -> str:
    return f"#objects tr[data-kind='{kind}'][data-name='{name}']"


def watch_requests(page: Any) -> list[str]:
    """Every URL the page asks for from now on."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def test_ready_then_a_broken_save_stalls_then_the_fix_is_applied_without_a_reload(
    page: Any, module_server: LiveServer, source: Path
) -> None:
    server = module_server
    asked = watch_requests(page)
    sign_in(page, server)
    first = ready(server)
    page.wait_for_selector(condition("Ready"))
    page.wait_for_selector(f"#source-revision[data-revision='{first}']")
    assert page.text_content("#source-revision") == short(first)
    assert page.get_attribute("#source-revision", "title") == first
    assert page.text_content("#source-url") == str(source)
    assert page.is_hidden("#source-reason-box") and page.is_hidden("#source-attempted-box")
    assert page.text_content(f"{row('Policy', 'p')} .condition") == "Ready"
    assert page.text_content(f"{row('Policy', 'p')} .revision code") == short(first)
    assert page.is_visible(row("Agent", "a"))
    page.evaluate("window.stayed = true")  # gone if the page reloaded

    (source / "broken.yaml").write_text(BROKEN)
    page.wait_for_selector(condition("Stalled"))
    page.wait_for_selector("#source-reason:has-text('broken.yaml:4:')")
    assert "error: YAML syntax error" in page.text_content("#source-reason")
    assert page.text_content("#source-revision") == short(first)  # the last good one stays
    stalled = status(server)["source"]
    assert stalled["attempted"] != first
    assert page.get_attribute("#source-attempted", "title") == stalled["attempted"]
    assert page.is_visible("#source-attempted-box")
    assert page.text_content(f"{row('Policy', 'p')} .condition") == "Ready"

    (source / "broken.yaml").write_text(FIXED)
    page.wait_for_selector(condition("Ready"))
    second = ready(server)
    assert second != first
    page.wait_for_selector(f"#source-revision[data-revision='{second}']")
    page.wait_for_selector(f"{row('Policy', 'q')} .revision code[data-revision='{second}']")
    assert page.is_hidden("#source-reason-box") and page.is_hidden("#source-attempted-box")
    assert page.evaluate("window.stayed") is True
    # gitops events carry the run id ':gitops': no run, so the page never asks for it
    assert [url for url in asked if "/v1/runs/" in url] == []
    (source / "broken.yaml").unlink()  # without --prune, q stays applied
    third = wait_until("the removal seen", lambda: (r := ready(server)) != second and r)
    page.wait_for_selector(f"#source-revision[data-revision='{third}']")


def test_markup_in_a_stalled_reason_is_shown_as_text_and_never_runs(
    page: Any, module_server: LiveServer, source: Path
) -> None:
    server = module_server
    sign_in(page, server)
    first = ready(server)
    page.wait_for_selector(f"#source-revision[data-revision='{first}']")
    (source / "hostile.yaml").write_text(HOSTILE)
    page.wait_for_selector(condition("Stalled"))
    page.wait_for_selector("#source-reason:has-text('hostile.yaml:6:')")
    reason = page.text_content("#source-reason")
    assert MARKUP in reason, reason
    assert page.locator("#source-section img").count() == 0
    assert page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#source-section").screenshot(path=str(ARTIFACTS / "web-gitops.png"))
    (source / "hostile.yaml").unlink()
    page.wait_for_selector(condition("Ready"))
    assert page.evaluate("window.pwned") is None


def test_reconcile_now_for_an_admin_and_a_polite_no_for_a_viewer(
    page: Any, module_server: LiveServer
) -> None:
    server = module_server
    sign_in(page, server, "viewer")
    page.wait_for_selector(condition("Ready"))
    page.click("#reconcile")  # the page cannot know the role before the server answers
    page.wait_for_selector("#reconcile-message:text('Only an admin')")
    assert page.is_hidden("#reconcile")

    page.click("#sign-out")
    sign_in(page, server, "admin")
    page.wait_for_selector(condition("Ready"))
    assert page.is_visible("#reconcile") and page.text_content("#reconcile-message") == ""
    page.click("#reconcile")
    page.wait_for_selector("#reconcile-message:text('A pass has started')")
    page.wait_for_selector(condition("Ready"))  # Reconciling while the pass runs, then back
