"""Building the guest a micro-VM boots: the distribution's kernel and an initramfs.

The kernel comes from the system package manager (``apt-get download`` of the cloud
kernel), unpacked to an uncompressed ``vmlinux`` (it boots faster than the bzImage).
The initramfs holds the virtio modules, python3 with its standard library, the guest
agent, its init (``guest/agent/init.py``: tmpfs at /work, /tmp and /run, root made
read-only, then the agent on the virtio-serial port) and the programs the recipe lists,
with their libraries; no busybox. Builds are cached under a hash of their inputs, so a
changed agent, init or recipe builds a new image.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminaguard.hypervisor.base import BackendError
from luminaguard.hypervisor.vm.image.recipe import DEFAULT_RECIPE, Recipe

AGENT = Path(__file__).resolve().parents[1] / "guest" / "agent" / "luminaguard_agent.py"
CACHE = Path(os.environ.get("LUMINAGUARD_CACHE", Path.home() / ".cache" / "luminaguard")) / "images"
MODULES = (
    "drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_mmio",
    "drivers/char/virtio_console", "drivers/block/virtio_blk", "fs/squashfs/squashfs",
    "net/vmw_vsock/vsock", "net/vmw_vsock/vmw_vsock_virtio_transport_common",
    "net/vmw_vsock/vmw_vsock_virtio_transport",
    "net/core/failover", "drivers/net/net_failover", "drivers/net/virtio_net",
)  # fmt: skip
UNNEEDED = ("test", "idlelib", "tkinter", "ensurepip", "lib2to3", "__pycache__", "site-packages",
            "dist-packages", "config-*", "turtledemo", "pydoc_data")  # fmt: skip
PYTHON = "/usr/bin/python3.11"
INIT = AGENT.with_name("init.py")


@dataclass(frozen=True)
class GuestImage:
    """A bootable guest: kernel and initramfs."""

    kernel: Path
    initrd: Path
    key: str
    disk: Path | None = None  # read-only squashfs tools disk, mounted at /opt


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def kernel(cache: Path = CACHE) -> tuple[Path, Path]:
    """The uncompressed vmlinux and module tree of the distribution's cloud kernel."""
    folder = cache / "kernel"
    vmlinux = folder / "vmlinux"
    if not vmlinux.exists():
        folder.mkdir(parents=True, exist_ok=True)
        depends = _run("apt-cache", "depends", "linux-image-cloud-amd64")
        package = next(
            line.split()[-1] for line in depends.splitlines() if "Depends: linux-image-" in line
        )
        _run("apt-get", "download", package, cwd=folder)
        _run("dpkg", "-x", next(folder.glob("*.deb")), folder / "x")
        data = Path(glob.glob(str(folder / "x" / "boot" / "vmlinuz-*"))[0]).read_bytes()
        payload = data[data.find(b"\x02\x21\x4c\x18") :]  # the lz4 (legacy) stream in vmlinuz
        partial = _partial(vmlinux)
        with open(partial, "wb") as out:
            subprocess.run(
                ["lz4", "-dc"], input=payload, stdout=out, stderr=subprocess.DEVNULL, check=False
            )
        partial.rename(vmlinux)
    return vmlinux, Path(glob.glob(str(folder / "x" / "lib" / "modules" / "*" / "kernel"))[0])


def _partial(target: Path) -> Path:
    """Where one builder writes ``target`` before renaming it into place.

    One per builder, so that concurrent builds never rename each other's files.
    """
    return target.with_name(f"{target.name}.partial-{os.getpid()}-{threading.get_ident()}")


def _libraries(program: Path, root: Path) -> None:
    """Copy the shared libraries ``program`` links, at the same paths in the guest."""
    for path in (word for word in _run("ldd", program).split() if word.startswith("/")):
        (root / path[1:]).parent.mkdir(parents=True, exist_ok=True)
        if not (root / path[1:]).exists():
            shutil.copy(path, root / path[1:])


def _copy_with_libraries(program: Path, root: Path, target: Path) -> None:
    """A program and the shared libraries it links."""
    shutil.copy(program, target)
    _libraries(program, root)


def _tool(name: str) -> Path:
    found = shutil.which("dash" if name == "sh" else name)
    if found is None:
        raise BackendError(f"image recipe tool {name!r} is not installed on this machine")
    return Path(found).resolve()


def _populate(root: Path, modules: Path, recipe: Recipe) -> None:
    folders = "bin proc sys dev work tmp run etc opt lib/modules usr/bin usr/lib"
    for folder in folders.split():
        (root / folder).mkdir(parents=True)
    (root / "etc" / "machine-id").symlink_to("/run/machine-id")  # written per clone (reseed)
    (root / "etc" / "hosts").symlink_to("/run/hosts")  # the egress allow-list's names (init)
    (root / "etc" / "nsswitch.conf").write_text("hosts: files\n")  # no DNS in the guest
    for module in MODULES:
        shutil.copy(modules / f"{module}.ko", root / "lib" / "modules")
    _copy_with_libraries(Path(PYTHON), root, root / "usr" / "bin" / "python3")
    stdlib = root / "usr" / "lib" / "python3.11"
    shutil.copytree("/usr/lib/python3.11", stdlib, ignore=shutil.ignore_patterns(*UNNEEDED))
    for extension in stdlib.glob("lib-dynload/*.so"):  # e.g. _ctypes needs libffi
        _libraries(extension, root)
    for program in recipe.disk_programs:  # on the tools disk; their libraries here
        _libraries(_tool(program), root)
    for tool in recipe.tools:  # only what the recipe lists
        _copy_with_libraries(
            _tool(tool), root, root / ("bin" if tool == "sh" else "usr/bin") / tool
        )
    shutil.copy(AGENT, root / "usr" / "bin")
    shutil.copy(INIT, root / "init")
    (root / "init").chmod(0o755)


def _disk(recipe: Recipe, cache: Path) -> Path | None:
    """The recipe's read-only tools disk (squashfs), built once per content."""
    if not (recipe.disk_programs or recipe.disk_folders):
        return None
    parts = [str(recipe.disk_programs), str(recipe.disk_folders)]
    parts += [str(_tool(p).stat().st_mtime) for p in recipe.disk_programs]
    parts += [
        str(max((f.stat().st_mtime for f in folder.rglob("*")), default=0))
        for _, folder in recipe.disk_folders
    ]
    disk = cache / f"tools-{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:16]}.sqfs"
    if disk.exists():
        return disk
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        (staging / "bin").mkdir()
        for program in recipe.disk_programs:
            shutil.copy(_tool(program), staging / "bin" / program)  # libraries: in the root
        for name, folder in recipe.disk_folders:
            shutil.copytree(folder, staging / name, symlinks=True)
        partial = _partial(disk)
        squashfs(staging, partial)
        partial.rename(disk)
    return disk


def squashfs(folder: Path, image: Path) -> None:
    """A read-only squashfs image of ``folder``: the same bytes for the same content."""
    _run(
        "mksquashfs", folder, image, "-noappend", "-quiet", "-comp", "lz4", "-all-root",
        "-mkfs-time", "0", "-all-time", "0",
    )  # fmt: skip


def archive(root: Path) -> bytes:
    """The gzipped cpio (newc) initramfs of ``root``: the same bytes for the same content.

    Entries are sorted, owned by root, dated 1970 and stripped of inode and device
    numbers, and the gzip header carries no time.
    """
    paths = sorted(root.rglob("*"))
    for path in [*paths, root]:
        os.utime(path, (0, 0), follow_symlinks=False)
    names = "\n".join(["."] + [f"./{p.relative_to(root)}" for p in paths]) + "\n"
    done = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--reproducible", "-R", "0:0"],
        cwd=root, input=names.encode(), capture_output=True, check=True,
    )  # fmt: skip
    return gzip.compress(done.stdout, compresslevel=1, mtime=0)


def build(recipe: Recipe = DEFAULT_RECIPE, cache: Path = CACHE) -> GuestImage:
    """The guest image, built once per distinct input (kernel, python, agent, init, recipe)."""
    vmlinux, modules = kernel(cache)
    builder = Path(__file__).read_text()  # how the image is built is an input too
    parts = [vmlinux.stat().st_size, PYTHON, AGENT.read_text(), INIT.read_text(), builder]
    parts += [UNNEEDED, recipe.tools, recipe.disk_programs, recipe.disk_folders]
    inputs = [str(part) for part in parts]
    key = hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:16]
    image = cache / f"initrd-{key}.cpio.gz"
    if not image.exists():
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            _populate(root, modules, recipe)
            partial = _partial(image)
            partial.write_bytes(archive(root))
            partial.rename(image)
            manifest = {
                "recipe": recipe.name,
                "tools": list(recipe.tools),
                "kernel": str(vmlinux),
                "built": time.time(),
            }
            image.with_suffix(".json").write_text(json.dumps(manifest, indent=2))
    return GuestImage(vmlinux, image, key, _disk(recipe, cache))


def built_images(cache: Path = CACHE) -> list[dict[str, Any]]:
    """Every cached image: key, recipe, tools, size, when built."""
    found = []
    for manifest in sorted(cache.glob("initrd-*.cpio.json")):
        data = json.loads(manifest.read_text())
        image = manifest.with_suffix(".gz")
        size = image.stat().st_size if image.exists() else 0
        found.append({**data, "key": manifest.name[7:23], "size_mb": round(size / 1e6, 1)})
    return found


def missing_tools() -> list[str]:
    """What this machine lacks to build and boot a guest (empty when nothing)."""
    needed = ["qemu-system-x86_64", "dash", "lz4", "cpio", "mksquashfs", "apt-get", "dpkg", "ldd"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    return missing + ([PYTHON] if not Path(PYTHON).exists() else [])
