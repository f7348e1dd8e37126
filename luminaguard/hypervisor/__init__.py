"""The hypervisor layer: a ``Backend`` per isolation technology, chosen by name.

``backend(name)`` gives one (``sandbox``, ``gvisor``, ``qemu``, ``firecracker``) and
``report()`` says which this machine can run. An agent's ``SandboxSpec`` (with a
``VmShape`` or a pool's name) is what a backend creates a sandbox from; ``PoolConfig``
configures a VM backend's warm pools. Names are imported on first use (``lazy``): the
sandbox helper imports this package on every spawn.
"""

from __future__ import annotations

from luminaguard.lazy import exports

TYPE_CHECKING = False  # mypy treats this name as true; importing typing costs spawn time
if TYPE_CHECKING:
    from luminaguard.hypervisor.base import (
        Availability,
        Backend,
        BackendError,
        ExecResult,
        Mount,
        PoolConfig,
        SandboxHandle,
        SandboxProcess,
        SandboxSpec,
        VmShape,
    )
    from luminaguard.hypervisor.registry import backend, report

_BASE = "luminaguard.hypervisor.base"
_REGISTRY = "luminaguard.hypervisor.registry"
__all__ = [
    "Availability",
    "Backend",
    "BackendError",
    "ExecResult",
    "Mount",
    "PoolConfig",
    "SandboxHandle",
    "SandboxProcess",
    "SandboxSpec",
    "VmShape",
    "backend",
    "report",
]
__getattr__ = exports(
    __name__, {name: _REGISTRY if name in ("backend", "report") else _BASE for name in __all__}
)
