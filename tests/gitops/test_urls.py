from __future__ import annotations

import pytest

from luminaguard.gitops.gitsource import checked_name
from luminaguard.gitops.source import SourceError
from luminaguard.gitops.urls import is_git_url, parse, redact, redact_text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@host/x.git", "https://***@host/x.git"),
        ("https://ghp_token@host:8443/x.git", "https://***@host:8443/x.git"),
        ("ssh://git@host/x.git", "ssh://***@host/x.git"),
        ("https://host/x.git", "https://host/x.git"),
        ("git@host:o/x.git", "git@host:o/x.git"),
        ("/srv/repo", "/srv/repo"),
    ],
)
def test_user_info_is_redacted(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert parse(url).shown == shown


def test_git_output_is_redacted() -> None:
    url = parse("https://user:p%40ss@host/x.git")
    said = "fatal: https://user:p%40ss@host/x.git p@ss p%40ss; see http://a:b@elsewhere/"
    text = redact_text(said, url)
    assert "p@ss" not in text and "p%40ss" not in text and "a:b" not in text
    assert "https://***@host/x.git" in text and "http://***@elsewhere/" in text


def test_a_token_as_user_name_is_a_secret() -> None:
    url = parse("https://ghp_abc123@github.com/o/r.git")
    assert "ghp_abc123" not in redact_text("denied for ghp_abc123", url)


@pytest.mark.parametrize(
    ("url", "local"),
    [("file:///srv/repo", True), ("/srv/repo", True), ("https://h/x", False), ("a@h:x", False)],
)
def test_local_or_remote(url: str, local: bool) -> None:
    assert parse(url).local is local


def test_what_is_a_git_url() -> None:
    assert is_git_url("https://h/x") and is_git_url("git@h:x") and is_git_url("file:///x")
    assert not is_git_url("examples/") and not is_git_url("/srv/repo")
    assert not is_git_url("ftp://h/x")


@pytest.mark.parametrize("branch", ["-x", "a..b", "a b", "x^", "x~1", "a:b", "x.lock", "/x", ""])
def test_a_branch_that_is_no_branch_name_is_refused(branch: str) -> None:
    with pytest.raises(SourceError, match="refused"):
        checked_name(branch, "branch")


def test_usable_names_pass() -> None:
    assert checked_name("release/1.2", "branch") == "release/1.2"
    assert checked_name("v1.0^{commit}", "revision") == "v1.0^{commit}"
    assert checked_name(None, "branch") is None
