"""The environment every sandboxed command starts from, whatever the runner's own is.

Nothing here depends on the runner's interpreter or environment: a fixed ``PATH``
(so a bare ``python3`` is the sandbox's, never the runner's virtualenv), and git
told to read no system or global configuration and to run no program that a
repository's own configuration names (``core.fsmonitor``, hooks, pagers, external
ssh, transports...). Configuration given through ``GIT_CONFIG_COUNT`` has
command-line precedence, above the repository's ``.git/config``. Not covered, because
no setting can switch them off without breaking the command: ``diff.external`` (an
empty value makes ``git diff`` fail; ``git diff`` honours it, ``git status`` and
``git log`` do not) and drivers named through attributes (``diff.NAME.textconv``,
``filter.NAME.clean``): the policy must keep ``--no-ext-diff``/``--no-textconv``.

Standard library only: ``sandbox.helper`` imports it.
"""

from __future__ import annotations

PATH = "/usr/local/bin:/usr/bin:/bin"

#: git settings that neutralise the repository's config keys which run programs
GIT_OVERRIDES = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("sequence.editor", "false"),
    ("core.askPass", ""),
    ("core.sshCommand", "false"),
    ("core.gitProxy", ""),
    ("core.alternateRefsCommand", ""),
    ("gpg.program", "false"),
    ("gpg.ssh.program", "false"),
    ("gpg.x509.program", "false"),
    ("log.showSignature", "false"),
    ("credential.helper", ""),
    ("protocol.allow", "never"),
    ("uploadpack.packObjectsHook", ""),
    ("receive.procReceiveRefs", ""),
    ("pager.log", "false"),
    ("pager.diff", "false"),
    ("pager.show", "false"),
    ("pager.status", "false"),
)


def git_environment() -> dict[str, str]:
    """``GIT_*`` variables: no system or global config, the overrides above on top."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",  # `git status` then leaves the index (and its hook) alone
        "GIT_PAGER": "cat",
        "GIT_EDITOR": "false",
        "GIT_ASKPASS": "false",
        "GIT_SSH_COMMAND": "false",
        "GIT_CONFIG_COUNT": str(len(GIT_OVERRIDES)),
    }
    for index, (key, value) in enumerate(GIT_OVERRIDES):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def base_environment() -> dict[str, str]:
    """What a sandboxed command's environment holds before the agent's own variables."""
    return {"PATH": PATH, "HOME": "/work", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}


def environment(declared: dict[str, str]) -> dict[str, str]:
    """The full environment: the base, the agent's declared variables, git's settings last.

    The git settings come last so that no variable (the agent's ``env`` included) can
    make git run a program named by a repository.
    """
    return {**base_environment(), **declared, **git_environment()}
