"""The Image and Pool kinds: what a micro-VM boots and how many are kept warm."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from luminaguard.config.models.common import Model, Name

# Values the schema allows but nothing implements are refused where they are written
# (a field that validates and does nothing is a promise broken silently).


def _only(allowed: str | bool, why: str) -> BeforeValidator:
    """Refuse a value of ``allowed``'s type other than ``allowed``, saying ``why``.

    ``why`` may name the value as ``{value!r}``. A value of another type is left to the
    type check (``expected true or false``).
    """
    written = str(allowed).lower() if isinstance(allowed, bool) else allowed

    def check(value: Any) -> Any:
        if type(value) is type(allowed) and value != allowed:
            raise ValueError(f"{why.format(value=value)}; write {written} or leave it out")
        return value

    return BeforeValidator(check)


Kernel = Annotated[
    Literal["debian-cloud"],
    _only(
        "debian-cloud",
        "kernel {value!r} is not available: the image builder boots the distribution's "
        "cloud kernel only",
    ),
]
ReadOnlyRoot = Annotated[
    Literal[True],
    _only(
        True,
        "a writable root is not available: the guest's init always mounts it read-only "
        "(write to /work or /tmp)",
    ),
]
Refill = Annotated[
    Literal["snapshot"],
    _only(
        "snapshot",
        "{value!r} refill is not available: pools always refill with clones of their snapshot",
    ),
]


class ImageSpec(Model):
    """A guest image: kernel, root filesystem recipe (under rootfs/), size and network."""

    rootfs: str = Field(description="recipe file under rootfs/ that builds the guest root")
    kernel: Kernel = Field(
        default="debian-cloud",
        description="guest kernel: the distribution's cloud kernel (the only one built)",
    )
    vcpus: int = Field(default=1, ge=1, le=32, description="the guest's virtual CPUs")
    memory_mib: int = Field(
        default=256,
        ge=32,
        le=65536,
        description="the guest's memory; its root is unpacked into it (about 150 MiB for "
        "the Python base), so too little stops the boot with a clear error",
    )
    read_only_root: ReadOnlyRoot = Field(
        default=True, description="the guest's root is always read-only; false is refused"
    )
    network: Literal["none", "egress-allowlist"] = "none"
    egress: list[str] = Field(
        default_factory=list, description="host:port pairs reachable with egress-allowlist"
    )

    @model_validator(mode="after")
    def _egress_needs_allowlist(self) -> Self:
        if self.egress and self.network != "egress-allowlist":
            raise ValueError("'egress' needs network: egress-allowlist")
        return self


class PoolSpec(Model):
    """Warm micro-VMs of one image, served one per task and destroyed after it."""

    image: Name
    warm: int = Field(default=1, ge=0, le=1024)
    max: int = Field(default=8, ge=1, le=4096)
    refill: Refill = Field(
        default="snapshot",
        description="how the pool refills: clones of its snapshot (the only way implemented)",
    )

    @model_validator(mode="after")
    def _warm_within_max(self) -> Self:
        if self.warm > self.max:
            raise ValueError(f"warm ({self.warm}) must not exceed max ({self.max})")
        return self
