"""Bearer tokens: private storage of digests only, roles, revocation seen by a running server."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from luminaguard.errors import UsageError
from luminaguard.server.tokens import (
    Identity,
    Permission,
    Role,
    TokenFile,
    TokenFileError,
    allows,
)
from tests.conftest import CliRunner

# Written out here, not taken from the module: the table the module must implement.
ALLOWED = {
    Role.VIEWER: {Permission.READ},
    Role.SUBMITTER: {Permission.READ, Permission.SUBMIT, Permission.CANCEL},
    Role.APPROVER: {Permission.READ, Permission.APPROVE},
    Role.ADMIN: set(Permission),
}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_raw(state: Path, entries: list[dict[str, object]]) -> Path:
    """A tokens file written by hand (0600), as an attacker or an old version might."""
    path = state / "tokens.json"
    path.write_text(json.dumps({"version": 1, "tokens": entries}))
    path.chmod(0o600)
    return path


def test_the_file_is_created_private_in_a_private_folder(state: Path) -> None:
    TokenFile(state)
    assert _mode(state) == 0o700
    assert _mode(state / "tokens.json") == 0o600
    assert _mode(state / "tokens.lock") == 0o600
    assert json.loads((state / "tokens.json").read_text())["tokens"] == []


def test_a_created_token_authenticates_its_name_and_role(state: Path) -> None:
    file = TokenFile(state)
    token = file.create("ci-bot@example", Role.SUBMITTER)
    assert token.startswith("lg_") and len(token) == 46
    assert file.authenticate(token) == Identity("ci-bot@example", Role.SUBMITTER)
    assert file.create("other", "viewer") != token
    assert _mode(state / "tokens.json") == 0o600  # still private after the rewrite


def test_a_wrong_or_revoked_token_is_refused(state: Path) -> None:
    file = TokenFile(state)
    alice = file.create("alice", Role.ADMIN)
    bob = file.create("bob", Role.VIEWER)
    assert file.authenticate(alice[:-1] + ("A" if alice[-1] != "A" else "B")) is None
    assert file.authenticate("lg_" + "x" * 43) is None
    assert file.revoke("alice") is True
    assert file.authenticate(alice) is None
    assert file.authenticate(bob) == Identity("bob", Role.VIEWER)  # the others stay
    assert file.revoke("alice") is False


def test_a_token_whose_digest_begins_like_a_stored_one_is_refused(state: Path) -> None:
    """The whole digest is compared, not a prefix of it."""
    file = TokenFile(state)
    token = file.create("alice", Role.ADMIN)
    start = hashlib.sha256(token.encode()).hexdigest()[:4]
    near = next(
        candidate
        for n in range(10**7)
        if hashlib.sha256((candidate := f"lg_{n:043d}").encode()).hexdigest()[:4] == start
    )
    assert near != token
    assert file.authenticate(near) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        "lg_",
        "lg_" + "a" * 31,
        "xx_" + "a" * 43,
        "LG_" + "a" * 43,
        "lg_" + "a" * 198,
        "lg_é" + "a" * 42,
        "lg_" + "a" * 42 + "\n",
        "lg_" + "a" * 42 + "=",
    ],
    ids=[
        "empty",
        "prefix-only",
        "short",
        "other-prefix",
        "upper-prefix",
        "too-long",
        "non-ascii",
        "newline",
        "not-url-safe",
    ],
)
def test_a_malformed_token_is_none_even_when_its_digest_is_stored(state: Path, token: str) -> None:
    """Refused before any lookup: a stored digest of it would not make it valid."""
    TokenFile(state)
    digest = hashlib.sha256(token.encode()).hexdigest()
    _write_raw(state, [{"name": "x", "role": "admin", "created": 0, "sha256": digest}])
    assert TokenFile(state).authenticate(token) is None


def test_a_token_with_a_stored_digest_authenticates(state: Path) -> None:
    """The counterpart of the test above: the same file written by hand is read."""
    TokenFile(state)
    token = "lg_" + "a" * 197  # the longest accepted
    digest = hashlib.sha256(token.encode()).hexdigest()
    _write_raw(state, [{"name": "x", "role": "admin", "created": 0, "sha256": digest}])
    assert TokenFile(state).authenticate(token) == Identity("x", Role.ADMIN)


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("role", list(Role))
def test_roles_grant_their_permissions_only(role: Role, permission: Permission) -> None:
    assert allows(role, permission) is (permission in ALLOWED[role])


def test_the_roles_and_permissions_are_these() -> None:
    assert [str(role) for role in Role] == ["viewer", "submitter", "approver", "admin"]
    assert [str(p) for p in Permission] == ["read", "submit", "cancel", "approve", "admin"]


def test_a_taken_name_is_refused_unless_replaced(state: Path) -> None:
    file = TokenFile(state)
    old = file.create("alice", Role.VIEWER)
    with pytest.raises(UsageError, match="'alice' exists already"):
        file.create("alice", Role.ADMIN)
    assert file.authenticate(old) == Identity("alice", Role.VIEWER)  # unchanged
    new = file.create("alice", Role.ADMIN, replace=True)
    assert file.authenticate(new) == Identity("alice", Role.ADMIN)
    assert file.authenticate(old) is None
    assert [info.name for info in file.list()] == ["alice"]


@pytest.mark.parametrize("name", ["", "a" * 65, "a/b", "a b", "é", "../x", "a\nb"])
def test_a_name_that_is_not_a_name_is_refused(state: Path, name: str) -> None:
    with pytest.raises(UsageError, match="is not a name"):
        TokenFile(state).create(name, Role.VIEWER)


def test_an_unknown_role_is_refused(state: Path) -> None:
    with pytest.raises(UsageError, match="unknown role 'root'"):
        TokenFile(state).create("alice", "root")


def test_the_file_never_holds_a_token_in_clear(state: Path) -> None:
    file = TokenFile(state)
    made = [file.create(f"user{n}", Role.ADMIN) for n in range(3)]
    file.create("user0", Role.VIEWER, replace=True)
    file.revoke("user1")
    text = (state / "tokens.json").read_text()
    for token in made:
        assert token not in text and token[3:] not in text
    assert hashlib.sha256(made[2].encode()).hexdigest() in text


def test_list_shows_names_roles_and_times_never_digests(state: Path) -> None:
    file = TokenFile(state)
    file.create("zed", Role.APPROVER)
    file.create("amy", Role.VIEWER)
    infos = file.list()
    assert [(info.name, info.role) for info in infos] == [
        ("amy", Role.VIEWER),
        ("zed", Role.APPROVER),
    ]
    assert all(info.created > 1.7e9 for info in infos)
    assert not any(hasattr(info, "digest") or hasattr(info, "sha256") for info in infos)


def test_a_file_readable_by_others_is_refused_naming_it(state: Path) -> None:
    file = TokenFile(state)
    token = file.create("alice", Role.ADMIN)
    path = state / "tokens.json"
    path.chmod(0o644)
    with pytest.raises(TokenFileError, match=f"{path} has mode 0644, not 0600"):
        file.authenticate(token)  # the running server
    with pytest.raises(TokenFileError, match=str(path)):
        TokenFile(state)  # the next start
    with pytest.raises(TokenFileError, match=str(path)):
        file.create("bob", Role.VIEWER)
    assert _mode(path) == 0o644  # refused, not repaired


def test_a_file_of_another_owner_is_refused(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    TokenFile(state)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(state).st_uid + 1)
    with pytest.raises(TokenFileError, match="is owned by uid"):
        TokenFile(state)


def test_a_symlinked_file_is_refused(state: Path, tmp_path: Path) -> None:
    TokenFile(state)
    elsewhere = tmp_path / "elsewhere.json"
    (state / "tokens.json").rename(elsewhere)
    (state / "tokens.json").symlink_to(elsewhere)
    with pytest.raises(TokenFileError, match=str(state / "tokens.json")):
        TokenFile(state)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"tokens": [{"name": "a"}]}',
        '{"tokens": [{"name": "a b", "role": "admin", "created": 0, "sha256": "'
        + "0" * 64
        + '"}]}',
        '{"tokens": [{"name": "a", "role": "root", "created": 0, "sha256": "' + "0" * 64 + '"}]}',
        '{"tokens": [{"name": "a", "role": "admin", "created": 0, "sha256": "xyz"}]}',
        '{"tokens": ['
        + ",".join(
            ['{"name": "a", "role": "admin", "created": 0, "sha256": "' + "0" * 64 + '"}'] * 2
        )
        + "]}",
    ],
    ids=["not-json", "a-list", "missing-fields", "bad-name", "bad-role", "bad-digest", "twice"],
)
def test_a_file_that_is_not_a_token_list_is_refused(state: Path, content: str) -> None:
    TokenFile(state)
    path = state / "tokens.json"
    path.write_text(content)
    with pytest.raises(TokenFileError, match=str(path)):
        TokenFile(state)


def test_a_deleted_file_accepts_no_token(state: Path) -> None:
    file = TokenFile(state)
    token = file.create("alice", Role.ADMIN)
    (state / "tokens.json").unlink()
    assert file.authenticate(token) is None


def test_changes_by_another_instance_take_effect_without_restart(state: Path) -> None:
    server = TokenFile(state)
    assert server.authenticate("lg_" + "a" * 43) is None  # loaded once, before the change
    token = TokenFile(state).create("alice", Role.SUBMITTER)  # as `luminaguard token create`
    assert server.authenticate(token) == Identity("alice", Role.SUBMITTER)
    assert TokenFile(state).revoke("alice")  # as `luminaguard token revoke`
    assert server.authenticate(token) is None


def test_a_change_keeping_size_and_mtime_is_seen_while_the_file_is_recent(state: Path) -> None:
    """A coarse clock can give two writes one mtime: a recently written file is read again."""
    server = TokenFile(state)
    token = server.create("alice", Role.ADMIN)
    path = state / "tokens.json"
    assert server.authenticate(token) is not None
    before = path.stat()
    data = json.loads(path.read_text())
    data["tokens"][0]["sha256"] = "0" * 64
    with open(path, "r+") as file:  # same inode, same size
        file.write(json.dumps(data, indent=2) + "\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert server.authenticate(token) is None


def test_an_unchanged_old_file_is_not_read_again(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = TokenFile(state)
    token = server.create("alice", Role.ADMIN)
    hour_ago = (state / "tokens.json").stat().st_mtime_ns - 3600 * 10**9
    os.utime(state / "tokens.json", ns=(hour_ago, hour_ago))
    reads = 0
    load = TokenFile._load

    def counted(self: TokenFile) -> object:
        nonlocal reads
        reads += 1
        return load(self)

    monkeypatch.setattr(TokenFile, "_load", counted)
    for _ in range(5):
        assert server.authenticate(token) == Identity("alice", Role.ADMIN)
    assert reads == 1


def test_concurrent_creations_all_take_effect(state: Path) -> None:
    TokenFile(state)
    made: list[str] = []

    def create(prefix: str) -> None:
        file = TokenFile(state)
        made.extend(file.create(f"{prefix}{n}", Role.VIEWER) for n in range(10))

    threads = [threading.Thread(target=create, args=(prefix,)) for prefix in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    file = TokenFile(state)
    assert len(file.list()) == 20
    assert all(file.authenticate(token) for token in made)


# The command line


def test_cli_create_prints_the_token_once_and_it_works(cli: CliRunner, state: Path) -> None:
    result = cli("token", "create", "alice", "--role", "approver", "--state", str(state))
    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert TokenFile(state).authenticate(token) == Identity("alice", Role.APPROVER)
    assert token not in result.err and "shown once" in result.err
    listed = cli("token", "list", "--state", str(state))
    assert listed.code == 0
    assert listed.out.split()[:2] == ["alice", "approver"]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert token not in listed.out + listed.err and digest not in listed.out + listed.err


def test_cli_refuses_a_taken_name_and_replaces_on_request(cli: CliRunner, state: Path) -> None:
    first = cli("token", "create", "alice", "--role", "viewer", "--state", str(state))
    again = cli("token", "create", "alice", "--role", "admin", "--state", str(state))
    assert again.code == 1 and again.out == ""
    assert "'alice' exists already" in again.err
    replaced = cli(
        "token", "create", "alice", "--role", "admin", "--replace", "--state", str(state)
    )
    assert replaced.code == 0
    file = TokenFile(state)
    assert file.authenticate(first.out.strip()) is None
    assert file.authenticate(replaced.out.strip()) == Identity("alice", Role.ADMIN)


def test_cli_revoke(cli: CliRunner, state: Path) -> None:
    token = cli("token", "create", "alice", "--role", "viewer", "--state", str(state)).out.strip()
    result = cli("token", "revoke", "alice", "--state", str(state))
    assert result.code == 0 and "revoked alice" in result.out
    assert TokenFile(state).authenticate(token) is None
    assert cli("token", "list", "--state", str(state)).out == "no tokens\n"
    missing = cli("token", "revoke", "alice", "--state", str(state))
    assert missing.code == 1 and "no token named 'alice'" in missing.err


def test_cli_refuses_bad_input_before_creating_anything(cli: CliRunner, state: Path) -> None:
    assert cli("token", "create", "a/b", "--role", "viewer", "--state", str(state)).code == 1
    assert cli("token", "create", "alice", "--role", "root", "--state", str(state)).code == 1
    assert cli("token", "create", "alice", "--state", str(state)).code == 1  # --role required
    assert not state.exists()


def test_cli_reports_a_file_that_is_not_private(cli: CliRunner, state: Path) -> None:
    TokenFile(state)
    (state / "tokens.json").chmod(0o640)
    result = cli("token", "list", "--state", str(state))
    assert result.code == 1
    assert f"{state / 'tokens.json'} has mode 0640" in result.err


def test_cli_state_defaults_to_the_environment(
    cli: CliRunner, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINAGUARD_STATE", str(state))
    token = cli("token", "create", "alice", "--role", "viewer").out.strip()
    assert TokenFile(state).authenticate(token) == Identity("alice", Role.VIEWER)
