"""The Agent kind: where an agent runs, which MCP servers it has, which policy governs it."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from luminaguard.config.models.common import Duration, EnvValue, Model, Name

ServerName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class McpServer(Model):
    """One MCP server: a stdio command run inside the agent's sandbox, or HTTP endpoints."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    url: str | None = None
    urls: list[str] = Field(default_factory=list)
    headers: dict[str, EnvValue] = Field(default_factory=dict)
    tools: list[str] | None = Field(
        default=None, description="allow-list of tool names; absent means every tool"
    )
    question_timeout: Duration | None = Field(
        default=None,
        description="how long a question the server asks (MCP elicitation) waits for a"
        " person before it is declined (default 5m); stdio servers only",
    )
    retry_window: Duration | None = Field(
        default=None,
        description="how long a request to an HTTP server whose every endpoint failed is"
        " tried again, with exponential backoff and jitter (default 5s); a call is retried"
        " only when idempotent, or when it was never sent; HTTP servers only",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        http = self.url is not None or bool(self.urls)
        if (self.command is not None) == http:
            raise ValueError("an MCP server needs either 'command' (stdio) or 'url'/'urls' (HTTP)")
        if self.url is not None and self.urls:
            raise ValueError("write either 'url' or 'urls', not both")
        if self.command is None and (self.args or self.env):
            raise ValueError("'args' and 'env' only apply to a stdio server with 'command'")
        if self.command is None and self.question_timeout is not None:
            raise ValueError("'question_timeout' only applies to a stdio server (questions)")
        if self.command is not None and self.retry_window is not None:
            raise ValueError("'retry_window' only applies to an HTTP server ('url'/'urls')")
        return self

    @property
    def endpoints(self) -> list[str]:
        """Every HTTP endpoint of the server, in order of preference."""
        return [self.url] if self.url else list(self.urls)


_RESERVED = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/proc",
    "/dev",
    "/tmp",
    "/work",
)


class MountSpec(Model):
    """A host folder shown inside the agent's sandbox; ``source`` is relative to the file."""

    source: str = Field(min_length=1)
    target: str = Field(
        pattern=r"^/[A-Za-z0-9._/-]+$", description="absolute path inside the sandbox"
    )
    read_only: bool = True

    @model_validator(mode="after")
    def _not_reserved(self) -> Self:
        if self.target == "/" or any(
            self.target == r or self.target.startswith(r + "/") for r in _RESERVED
        ):
            raise ValueError(
                f"mount target {self.target!r} would hide a system folder; use e.g. /data/..."
            )
        if ".." in self.target.split("/"):
            raise ValueError("mount target may not contain '..'")
        return self


class Limits(Model):
    """Resources one agent's sandbox or VM may use."""

    memory_mib: int = Field(default=512, ge=16)
    cpu_seconds: int = Field(default=300, ge=1)
    pids: int = Field(default=128, ge=1)
    cpus: float = Field(
        default=1.0,
        ge=0.01,
        le=1024,
        description="CPU quota in cores (0.5: half of one core), enforced by a cgroup",
    )
    disk_mib: int = Field(
        default=1024,
        ge=16,
        le=1 << 24,
        description="size of /work in MiB; writing past it fails inside the sandbox",
    )
    timeout: Duration = 600.0


class AgentSpec(Model):
    """An agent: its VM (pool or image; neither means the namespace sandbox) and tools."""

    policy: Name
    pool: Name | None = None
    image: Name | None = None
    mcp_servers: dict[ServerName, McpServer] = Field(default_factory=dict)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    mounts: list[MountSpec] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)

    @model_validator(mode="after")
    def _pool_or_image(self) -> Self:
        if self.pool is not None and self.image is not None:
            raise ValueError("write either 'pool' or 'image', not both (a pool names its image)")
        return self
