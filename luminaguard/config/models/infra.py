"""The Image and Pool kinds: what a micro-VM boots and how many are kept warm."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from luminaguard.config.models.common import Model, Name


class ImageSpec(Model):
    """A guest image: kernel, root filesystem recipe (under rootfs/), size and network."""

    rootfs: str = Field(description="recipe file under rootfs/ that builds the guest root")
    kernel: str = Field(default="debian-cloud", description="guest kernel flavour")
    vcpus: int = Field(default=1, ge=1, le=32, description="the guest's virtual CPUs")
    memory_mib: int = Field(
        default=256,
        ge=32,
        le=65536,
        description="the guest's memory; its root is unpacked into it (about 150 MiB for "
        "the Python base), so too little stops the boot with a clear error",
    )
    read_only_root: bool = True
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
    refill: Literal["snapshot", "cold"] = "snapshot"

    @model_validator(mode="after")
    def _warm_within_max(self) -> Self:
        if self.warm > self.max:
            raise ValueError(f"warm ({self.warm}) must not exceed max ({self.max})")
        return self
