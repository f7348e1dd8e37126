from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminaguard.gitops import trees
from luminaguard.gitops.source import GitSource, SourceError, source_for
from tests.gitops.conftest import FilesOf, Repo


def source(repo: Repo, cache: Path, **kwargs: str) -> GitSource:
    return GitSource(str(repo.path), cache, **kwargs)


def test_a_fetch_follows_new_commits_on_the_branch(
    repo: Repo, cache: Path, files_of: FilesOf
) -> None:
    first_sha = repo.run("rev-parse", "HEAD")
    git_source = source(repo, cache, branch="main")
    first = git_source.fetch()
    assert first.revision == first_sha and len(first.revision) == 40
    assert files_of(first.root) == repo.files(first_sha) == {"agent.yaml", "policies/p.yaml"}
    assert (first.root / "agent.yaml").read_text() == "kind: Agent\n"

    second_sha = repo.commit("second", **{"workload.yaml": "kind: Workload\n"})
    second = git_source.fetch()
    assert second.revision == second_sha
    assert files_of(second.root) == repo.files(second_sha)
    assert files_of(first.root) == repo.files(first_sha)  # the old tree is as it was


def test_without_a_branch_the_remote_head_is_followed(repo: Repo, cache: Path) -> None:
    assert source(repo, cache).fetch().revision == repo.run("rev-parse", "main")


def test_a_second_branch(repo: Repo, cache: Path, files_of: FilesOf) -> None:
    repo.run("switch", "--quiet", "-c", "staging")
    staging = repo.commit("staging only", **{"staging.yaml": "kind: Pool\n"})
    repo.run("switch", "--quiet", "main")
    main = repo.run("rev-parse", "HEAD")
    on_staging = source(repo, cache, branch="staging").fetch()
    on_main = source(repo, cache, branch="main").fetch()
    assert (on_staging.revision, on_main.revision) == (staging, main)
    assert "staging.yaml" in files_of(on_staging.root)
    assert "staging.yaml" not in files_of(on_main.root)


def test_a_pinned_revision_stays_put(repo: Repo, cache: Path, files_of: FilesOf) -> None:
    pinned = repo.run("rev-parse", "HEAD")
    repo.commit("later", **{"later.yaml": "x: 1\n"})
    snapshot = source(repo, cache, revision=pinned[:10]).fetch()
    assert snapshot.revision == pinned  # the full SHA
    assert files_of(snapshot.root) == repo.files(pinned)
    assert snapshot.revision_of(snapshot.root / "agent.yaml") == pinned


def test_the_tree_holds_exactly_the_committed_files(
    repo: Repo, cache: Path, files_of: FilesOf
) -> None:
    repo.write("untracked.yaml", "not committed\n")
    sha = repo.commit(
        "attributes",
        **{
            ".gitattributes": "ignored.yaml export-ignore\nsubst.yaml export-subst\n",
            "ignored.yaml": "kept\n",
            "subst.yaml": "$Format:%H$\n",
        },
    )
    repo.run("rm", "--quiet", "--cached", "untracked.yaml")
    sha = repo.commit("untrack")
    snapshot = source(repo, cache).fetch()
    assert snapshot.revision == sha
    assert files_of(snapshot.root) == repo.files(sha)
    assert (snapshot.root / "ignored.yaml").read_text() == "kept\n"
    assert (snapshot.root / "subst.yaml").read_text() == "$Format:%H$\n"


def test_a_missing_branch_is_named(repo: Repo, cache: Path) -> None:
    with pytest.raises(SourceError, match="branch 'nope' not found"):
        source(repo, cache, branch="nope").fetch()


def test_a_missing_revision_is_named(repo: Repo, cache: Path) -> None:
    with pytest.raises(SourceError, match="revision '0123456789abcdef' not found"):
        source(repo, cache, revision="0123456789abcdef").fetch()


def test_credentials_never_appear_in_an_error(tmp_path: Path, git: str) -> None:
    url = "https://user:s3cret@127.0.0.1:1/x.git"
    git_source = GitSource(url, tmp_path / "cache", timeout=30)
    assert "s3cret" not in git_source.url and git_source.url == "https://***@127.0.0.1:1/x.git"
    with pytest.raises(SourceError) as caught:
        git_source.fetch()
    message = str(caught.value)
    assert "s3cret" not in message and "user:" not in message
    assert "failed" in message and "https://***@127.0.0.1:1/x.git" in message
    assert not list((tmp_path / "cache").glob("*.git"))  # no half mirror


@pytest.mark.parametrize(
    ("url", "branch"),
    [("--upload-pack=touch /tmp/x", None), ("-oProxyCommand=x", None), ("ok", "--orphan")],
)
def test_option_looking_values_are_refused(tmp_path: Path, url: str, branch: str | None) -> None:
    with pytest.raises(SourceError, match="refused"):
        GitSource(url, tmp_path, branch=branch)
    with pytest.raises(SourceError, match="refused"):
        source_for(url, tmp_path, branch=branch or "main")


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/pwned", "fd::3", "ftp://host/x.git"])
def test_other_transports_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(SourceError, match=r"refused|unsupported"):
        GitSource(url, tmp_path)


def test_git_missing_is_a_clear_error(
    repo: Repo, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    with pytest.raises(SourceError, match=r"^git is not installed: "):
        source(repo, cache).fetch()


def test_a_symlink_out_of_the_repository_is_not_followed(
    repo: Repo, cache: Path, tmp_path: Path
) -> None:
    (repo.path / "passwd").symlink_to("/etc/passwd")
    (repo.path / "up").symlink_to("../../outside")
    (repo.path / "inside").symlink_to("agent.yaml")
    repo.commit("links")
    snapshot = source(repo, cache).fetch()
    for name in ("passwd", "up"):
        link = snapshot.root / name
        assert not link.exists() or (link.is_symlink() and not link.resolve().is_file())
    assert (snapshot.root / "inside").read_text() == "kind: Agent\n"  # a link inside stays
    assert not (cache / "outside").exists() and not (tmp_path / "outside").exists()
    assert [p.name for p in snapshot.root.parent.iterdir()] == [snapshot.revision]


def test_a_failed_fetch_leaves_the_previous_snapshot(
    repo: Repo, cache: Path, files_of: FilesOf
) -> None:
    git_source = source(repo, cache)
    previous = git_source.fetch()
    repo.commit("unreachable", **{"new.yaml": "x\n"})
    shutil.move(repo.path, repo.path.with_name("gone"))
    with pytest.raises(SourceError, match="failed"):
        git_source.fetch()
    assert files_of(previous.root) == {"agent.yaml", "policies/p.yaml"}
    assert [p.name for p in previous.root.parent.iterdir()] == [previous.revision]


def test_a_failed_export_leaves_no_partial_tree(
    repo: Repo, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_source = source(repo, cache)
    previous = git_source.fetch()
    repo.commit("second", **{"new.yaml": "x\n"})

    def broken(archive: Path, dest: Path) -> None:
        (dest / "half.yaml").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trees, "_extract", broken)
    with pytest.raises(SourceError, match="No space left"):
        git_source.fetch()
    assert [p.name for p in previous.root.parent.iterdir()] == [previous.revision]


def test_old_trees_are_pruned_beyond_the_limit(repo: Repo, cache: Path) -> None:
    git_source = source(repo, cache)
    roots = [git_source.fetch().root]
    for n in range(trees.KEEP + 2):
        repo.commit(f"c{n}", **{"n.yaml": f"{n}\n"})
        roots.append(git_source.fetch().root)
    kept = set(roots[-1].parent.iterdir())
    assert kept == set(roots[-trees.KEEP :])
    assert roots[-1].is_dir()


def test_a_tree_of_the_same_commit_is_reused(repo: Repo, cache: Path) -> None:
    git_source = source(repo, cache)
    first = git_source.fetch()
    (first.root / "marker").write_text("")
    assert git_source.fetch().root == first.root
    assert (first.root / "marker").exists()


def test_the_cache_is_private(repo: Repo, cache: Path) -> None:
    git_source = source(repo, cache)
    snapshot = git_source.fetch()
    for folder in (
        cache,
        git_source.mirror,
        git_source.folder,
        snapshot.root.parent,
        snapshot.root,
    ):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert git_source.mirror.name.endswith(".git") and len(git_source.mirror.name) == 16 + 4


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_hanging_remote_times_out(silent_server: int, tmp_path: Path, git: str) -> None:
    url = f"https://tok:s3cret@127.0.0.1:{silent_server}/x.git"
    with pytest.raises(SourceError, match=r"timed out after 1s") as caught:
        GitSource(url, tmp_path, timeout=1).fetch()
    assert "s3cret" not in str(caught.value)


def test_source_for_picks_the_kind(repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert type(source_for(str(repo.path), cache)).__name__ == "FolderSource"
    picked = source_for(str(repo.path), cache, branch="main")
    assert isinstance(picked, GitSource) and picked.fetch().revision == repo.run(
        "rev-parse", "HEAD"
    )
    assert isinstance(source_for(repo.path.as_uri(), cache), GitSource)
    for url in ("https://example.com/x.git", "ssh://git@example.com/x.git", "git@host:o/x.git"):
        assert isinstance(source_for(url, cache), GitSource)
    with pytest.raises(SourceError, match="neither a folder nor a git URL"):
        source_for(str(tmp_path / "missing"), cache)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(SourceError, match="not a git repository"):
        source_for(str(plain), cache, revision="abc")


def test_a_file_url_source(repo: Repo, cache: Path) -> None:
    snapshot = GitSource(repo.path.as_uri(), cache).fetch()
    assert snapshot.revision == repo.run("rev-parse", "HEAD")
    assert snapshot.url == repo.path.as_uri()
    assert os.access(snapshot.root / "agent.yaml", os.R_OK)
