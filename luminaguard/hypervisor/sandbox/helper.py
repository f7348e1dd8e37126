"""The sandbox zygote in Python: a small process that clones one sandbox per request.

The fallback where the compiled zygote (``zygote.c``, same requests, same reports)
cannot be built or run (``native``). Standard library only, and only the cheap part of
it (start-up time is spawn time); started once per backend as ``python3 -I -S
helper.py --zygote FD PARENT`` (see ``zygote``; the host side is ``sandbox.zygote``).
Each request names the sandbox's
``KEY=VALUE...`` and its ``-- ARGV...``; the keys are workdir, root, uid (the sandbox's
own user when started as root), fsize_mib (when /work has no disk of its own),
cpu_seconds, memory_mib, pids, network (0/1), cgroup (a file to write ``0`` in to join
a cgroup; repeated), mount (SOURCE:TARGET:ro|rw; repeated) and env (NAME=VALUE; repeated).

1. the zygote clones a child that is PID 1 of a new PID namespace (when not root, the
   zygote made a user namespace of its own first, and clones each child into one inside it),
   waits for it and reports its exit;
2. the child dies with the zygote (PR_SET_PDEATHSIG), joins the cgroups it is given,
   and unshare(2)s mount, network, IPC and UTS namespaces;
3. it builds a new root on a tmpfs: host system folders bound read-only, a fresh
   /proc, a few device nodes, /work bound read-write, /tmp a small tmpfs, extra
   mounts; pivots into it and makes the root read-only;
4. sets rlimits, drops to the sandbox's own unprivileged user (``uid``, when root),
   joins a fresh session keyring, sets no_new_privs, installs the seccomp filter
   (``seccomp``) last and execs the command with a clean environment (``sandbox_env``).

Any failure before the exec exits with code 125 and one line on stderr.
"""

from __future__ import annotations

# _signal is the C module: ``signal`` imports enum, which costs 4 ms of spawn time
import _signal  # type: ignore[import-not-found]
import ctypes
import errno
import os
import resource  # imported now: after the pivot the host's library is out of sight
import select
import stat
import sys

# with -I the script's folder is not on sys.path: add the folder holding the package
# (this file is luminaguard/hypervisor/sandbox/helper.py)
sys.path.insert(0, os.path.abspath(__file__).rsplit(os.sep, 4)[0])
from luminaguard.hypervisor.linux import env as sandbox_env
from luminaguard.hypervisor.linux import seccomp
from luminaguard.hypervisor.linux.system import NOBODY, SYSTEM_DIRS
from luminaguard.nofollow import open_no_links

TYPE_CHECKING = False  # mypy treats this name as true; importing typing costs spawn time
if TYPE_CHECKING:
    from typing import Any

    Spec = dict[str, Any]

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MNT_DETACH = 2
MSG_CTRUNC, MSG_TRUNC = 0x8, 0x20  # recvmsg(2): the descriptors, the bytes, cut short
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, ENOSYS = 442, -100, 0x8000, 38
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV = 1, 2, 4
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 28, 47, 4
#: NOROOT, NO_SETUID_FIXUP and KEEP_CAPS, each with its lock: root's powers never return.
SECURE_NO_ROOT = 0x3F
_CAPABILITY_VERSION_3 = 0x20080522
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")
SIGKILL, SIGCHLD, SIGXFSZ = 9, 17, 25
SETUP_FAILED = 125
KEYCTL_JOIN_SESSION_KEYRING = 1
MACHINE = os.uname().machine
FILTER = seccomp.program(MACHINE) if MACHINE in seccomp.ARCHES else None

libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """The sandbox could not be set up."""


def check(result: int, what: str) -> None:
    """Raise SetupError with errno's text when a libc call failed."""
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(errno)}")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    """Mount a filesystem (the mount system call); raise SetupError on failure."""
    encoded = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    check(libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]), f"mount {target}")


def bind(source: str, target: str, read_only: bool, trusted: bool = True) -> None:
    """Bind ``source`` onto ``target``; remount read-only, nosuid, nodev when asked.

    A source not ``trusted`` (an extra mount's, which may lie below a folder a sandbox
    writes) is reached without links (``open_source``) and bound through its descriptor.
    """
    fd = None if trusted else open_source(source)
    try:
        if os.path.isdir(source) if fd is None else stat.S_ISDIR(os.fstat(fd).st_mode):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        mount(source if fd is None else f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    finally:
        if fd is not None:
            os.close(fd)
    device = source.startswith("/dev/")
    if not flag_tree(target, read_only, device):  # a kernel before 5.12: the top mount only
        flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (MS_RDONLY if read_only else 0)
        mount(None, target, None, flags | (0 if device else MS_NODEV))


class MountAttr(ctypes.Structure):
    """``struct mount_attr`` (linux/mount.h)."""

    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clear", "propagation", "userns")]


def flag_tree(target: str, read_only: bool, device: bool) -> bool:
    """Flag the mount at ``target`` and every mount below it; False without mount_setattr.

    Always nosuid; read-only when asked; nodev unless a device. A remount flags only the
    top mount: a read-only bind of a folder with mounts below it would leave those
    writable.
    """
    flags = ATTR_NOSUID | (ATTR_RDONLY if read_only else 0) | (0 if device else ATTR_NODEV)
    attr = MountAttr(flags)
    done = libc.syscall(
        SYS_MOUNT_SETATTR, AT_FDCWD, target.encode(), AT_RECURSIVE, ctypes.byref(attr),
        ctypes.sizeof(attr),
    )  # fmt: skip
    if done != 0 and ctypes.get_errno() == ENOSYS:
        return False
    check(done, f"mount {target}")
    return True


def open_source(path: str) -> int:
    """An extra mount's source opened O_PATH, never through a link (``nofollow``)."""
    try:
        return open_no_links(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SetupError(f"mount source {path} passes through a symlink") from exc
        raise SetupError(f"mount source {path}: {os.strerror(exc.errno or 0)}") from exc


def build_root(spec: Spec, root: str) -> None:
    """Mount everything the sandbox sees under ``root``."""
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for name in SYSTEM_DIRS:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(root, name))
        elif os.path.isdir(host):
            bind(host, os.path.join(root, name), read_only=True)
    os.makedirs(os.path.join(root, "proc"))
    mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(os.path.join(root, "dev"))
    for device in DEVICES:
        bind("/dev/" + device, os.path.join(root, "dev", device), read_only=False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, os.path.join(root, "dev", name))
    tmp = os.path.join(root, "tmp")
    os.makedirs(tmp)
    mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    bind(spec["workdir"], os.path.join(root, "work"), read_only=False)
    for index, extra in enumerate(spec.get("mounts", [])):
        bind_at(root, index, extra["source"], extra["target"], extra["read_only"])


def bind_at(root: str, index: int, source: str, target: str, read_only: bool) -> None:
    """Bind ``source`` at ``target`` below ``root``, never through a link on the way.

    Bound and flagged at a place of our fresh root first, then moved onto a descriptor of
    the target (``open_target``): another sandbox sharing ``/work`` may swap a folder on
    the way for a link at any moment, and a path would follow it (as root, on the host).
    """
    stage = os.path.join(root, f".mount-{index}")
    bind(source, stage, read_only, trusted=False)  # the source reached without links too
    target_fd = open_target(root, target, os.path.isdir(stage))
    try:
        mount(stage, f"/proc/self/fd/{target_fd}", None, MS_MOVE)
    finally:
        os.close(target_fd)
    (os.rmdir if os.path.isdir(stage) else os.unlink)(stage)


def open_target(root: str, target: str, folder: bool) -> int:
    """An ``O_PATH`` descriptor of ``target`` below ``root``, reached through no link.

    One component at a time, each opened ``O_NOFOLLOW`` from the one before, making
    what is missing: folders on the way, at the end a folder (``folder``) or an empty file.
    """
    at = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    parts = [part for part in target.split("/") if part]
    for i, part in enumerate(parts):
        try:
            step = _open_below(at, part, folder or i < len(parts) - 1, target)
        finally:
            os.close(at)
        at = step
    return at


def _open_below(at: int, name: str, folder: bool, target: str) -> int:
    """``name`` in the folder ``at``, made if missing, opened without following a link."""
    if name in (".", ".."):
        raise SetupError(f"mount target {target} has a '{name}' component")
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if folder:
            os.mkdir(name, 0o755, dir_fd=at)
        else:
            made = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, made, 0o644, dir_fd=at))
    except FileExistsError:
        pass
    try:
        fd = os.open(name, flags | (os.O_DIRECTORY if folder else 0), dir_fd=at)
    except OSError as exc:  # ELOOP, ENOTDIR: a link (or a file) where a folder goes
        raise SetupError(f"mount target {target} passes through a symlink: {exc}") from exc
    mode = os.fstat(fd).st_mode
    if (mode & 0o170000) != (0o040000 if folder else 0o100000):  # a folder, or a file
        os.close(fd)
        raise SetupError(f"mount target {target} passes through a symlink or a special file")
    return fd


def pivot(root: str) -> None:
    """Make ``root`` the root, drop the old one, make the new root read-only."""
    old = os.path.join(root, ".old-root")
    os.makedirs(old)
    machine = os.uname().machine
    number = SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise SetupError(f"pivot_root: unsupported architecture {machine}")
    check(libc.syscall(number, root.encode(), old.encode()), "pivot_root")
    os.chdir("/")
    check(libc.umount2(b"/.old-root", MNT_DETACH), "umount old root")
    os.rmdir("/.old-root")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def count(spec: Spec, key: str, most: int) -> int:
    """``spec[key]`` as a number of at most ``most``, in ASCII digits only.

    Not ``int``, which takes a sign, spaces, underscores and other scripts' digits.
    """
    text = spec.get(key)
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and int(text) <= most):
        raise SetupError(f"{key}: not a number of at most {most}: {text!r}")
    return int(text)


def limit(spec: Spec) -> None:
    """rlimits: CPU seconds always; memory and processes when no cgroup enforces them."""
    cpu = count(spec, "cpu_seconds", 1 << 40)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not spec.get("cgroup_memory"):
        size = count(spec, "memory_mib", 1 << 40) << 20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if not spec.get("cgroup_pids"):
        pids = count(spec, "pids", 1 << 30)
        resource.setrlimit(resource.RLIMIT_NPROC, (pids, pids))
    if "fsize_mib" in spec:  # /work has no disk of its own: bound each file instead
        size = count(spec, "fsize_mib", 1 << 40) << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        _signal.signal(SIGXFSZ, _signal.SIG_IGN)  # a write past it fails (EFBIG), no kill


def sandbox_uid(spec: Spec) -> int:
    """The sandbox's own user: ``uid`` (``nobody`` when not given), never root."""
    uid = count(spec, "uid", 0x7FFFFFFE) if "uid" in spec else NOBODY
    if uid == 0:
        raise SetupError("uid 0: a sandbox never runs as root")
    return uid


def drop_privileges(as_root: bool, uid: int) -> None:
    """Become ``uid`` (when we were root), forbid gaining privileges, die with the parent."""
    if as_root:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    else:  # root of its own user namespace: every capability there, until dropped
        drop_capabilities()
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    check(libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "pdeathsig")


def drop_capabilities() -> None:
    """Give up every capability for good: bounding set, ambient, the sets, root's magic.

    Without root on the host the sandbox is uid 0 in a user namespace and would keep raw
    sockets, network administration and the rest: the kernel paths exploits start from.
    """
    check(libc.prctl(PR_SET_SECUREBITS, SECURE_NO_ROOT, 0, 0, 0), "securebits")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient capabilities")
    for capability in range(64):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: twice, all zero
    check(libc.capset(header, data), "capabilities")


def own_keyring() -> None:
    """Join a new, empty session keyring: the runner's keys are out of reach."""
    arch = seccomp.ARCHES.get(MACHINE)
    if arch is None:
        raise SetupError(f"session keyring: unsupported architecture {MACHINE}")
    serial = libc.syscall(arch.numbers["keyctl"], KEYCTL_JOIN_SESSION_KEYRING, None)
    if serial < 0:
        raise SetupError(f"session keyring: {os.strerror(ctypes.get_errno())}")


def confine() -> None:
    """Install the seccomp filter: the last step before the exec."""
    if FILTER is None:
        raise SetupError(f"seccomp: no filter for architecture {MACHINE}")
    check(seccomp.install(FILTER, libc.prctl), "seccomp")


def execute(argv: list[str], env: dict[str, str]) -> None:
    """Exec ``argv``, searching the sandbox's PATH for a bare name.

    Not ``os.execvpe``: it imports a module lazily, and after the pivot the runner's
    standard library may be out of sight (a Python installed outside ``/usr``).
    """
    if "/" in argv[0]:
        os.execve(argv[0], argv, env)
    denied: OSError | None = None
    for folder in env.get("PATH", sandbox_env.PATH).split(":"):
        try:
            os.execve(os.path.join(folder or ".", argv[0]), argv, env)
        except PermissionError as exc:
            denied = exc
        except (FileNotFoundError, NotADirectoryError):
            continue
    if denied is not None:
        raise denied
    raise SetupError(f"{argv[0]}: command not found in PATH {env.get('PATH', '')}")


def orphaned(lifeline: int) -> bool:
    """Whether the zygote died before we armed PDEATHSIG (its end of the pipe is closed).

    Across the PID namespace getppid() says 0 whether or not the parent lives.
    """
    readable, _, _ = select.select([lifeline], [], [], 0)
    return bool(readable)


def child(spec: Spec, argv: list[str], as_root: bool, lifeline: int) -> None:
    """PID 1 of the sandbox, in its namespaces: build the root, limit, drop privileges, exec."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    check(libc.sethostname(b"luminaguard", 11), "sethostname")
    root = spec["root"]
    build_root(spec, root)
    pivot(root)
    os.chdir("/work")
    limit(spec)
    drop_privileges(as_root, sandbox_uid(spec) if as_root else NOBODY)
    own_keyring()
    if orphaned(lifeline):
        raise SetupError("the sandbox zygote died during setup")
    os.close(lifeline)
    env = sandbox_env.environment(spec.get("env", {}))
    confine()
    execute(argv, env)


def map_user() -> None:
    """In a new user namespace, map ourselves to root so that mounts are allowed."""
    uid, gid = os.getuid(), os.getgid()
    check(libc.unshare(CLONE_NEWUSER), "unshare user namespace")
    map_ids(uid, gid)


def map_ids(uid: int, gid: int) -> None:
    """Map root of our new user namespace to ``uid`` and ``gid`` of the one around it."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


#: the keys a request may hold once (the repeated ones are cgroup, mount and env)
KEYS = {"workdir", "root", "uid", "fsize_mib", "cpu_seconds", "memory_mib", "pids", "network"}
MAX_LIST = 4096  # cgroups, mounts or variables: more is refused, never cut short


def parse(args: list[str]) -> Spec:
    """The spec from ``KEY=VALUE`` arguments; SetupError for anything else."""
    spec: Spec = {"cgroups": [], "mounts": [], "env": {}}
    for arg in args:
        key, equals, value = arg.partition("=")
        if key == "cgroup":
            spec["cgroups"].append(value)
        elif key == "mount":
            spec["mounts"].append(parse_mount(value))
        elif key == "env" and "=" in value:
            name, _, text = value.partition("=")
            spec["env"][name] = text
        elif key in KEYS and equals:
            spec[key] = value
        else:
            raise SetupError(f"a malformed request: {arg[:80]!r}")
    if "workdir" not in spec or "root" not in spec:
        raise SetupError("a malformed request: no workdir or root")
    if max(len(spec["cgroups"]), len(spec["mounts"]), len(spec["env"])) > MAX_LIST:
        raise SetupError(f"a malformed request: more than {MAX_LIST} cgroups, mounts or env")
    spec["network"] = spec.get("network") == "1"
    spec["cgroup_memory"] = spec["cgroup_pids"] = bool(spec["cgroups"])
    return spec


def parse_mount(value: str) -> dict[str, Any]:
    """``SOURCE:TARGET:ro|rw`` (the source may hold ':')."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or parts[2] not in ("ro", "rw") or not parts[1].startswith("/"):
        raise SetupError(f"a malformed mount: {value[:80]!r}: expected SOURCE:TARGET:ro|rw")
    return {"source": parts[0], "target": parts[1], "read_only": parts[2] == "ro"}


def become(spec: Spec, argv: list[str], fds: list[int], service: Service) -> None:
    """In a new clone, PID 1 of its own PID namespace: set the sandbox up and exec ``argv``.

    ``fds`` are the sandbox's stdin, stdout, stderr and status pipe; the status pipe
    stays with the zygote, out of the command's reach (it cannot forge ``exit``).
    """
    _signal.set_wakeup_fd(-1)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    os.setsid()  # a session of its own (the host kills the sandbox through PID 1, by pidfd)
    if not service.as_root:  # cloned into a user namespace of its own (see Service.clone)
        map_ids(*service.ids)
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in {*fds, *service.private, *service.status.values()} - {0, 1, 2}:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, service.files)
    check(libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "pdeathsig")
    if orphaned(service.lifeline):
        raise SetupError("the sandbox zygote died during setup")
    join_cgroups(spec.get("cgroups", []))
    flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if not spec.get("network"):
        flags |= CLONE_NEWNET
    check(libc.unshare(flags), "unshare")
    child(spec, argv, service.as_root, service.lifeline)


def join_cgroups(joins: list[str]) -> None:
    """Join each cgroup by writing ``0``: this thread, the process's only one.

    On cgroup v1 that is the ``tasks`` file, which moves one thread without the lock
    that moving a whole process takes (see ``linux.cgroups.JOIN_FILE``).
    """
    for join in joins:
        with open(join, "w") as f:
            f.write("0")


class Service:
    """The zygote's state: its lifeline, the status pipe of each live sandbox."""

    def __init__(self, as_root: bool, *private: int) -> None:
        self.as_root = as_root
        self.ids = os.getuid(), os.getgid()  # what root of each sandbox's user namespace maps to
        self.files = resource.getrlimit(resource.RLIMIT_NOFILE)  # what a sandbox gets back
        self.lifeline, keep_alive = os.pipe()  # sandboxes see EOF on it once we are gone
        self.woken, wake = os.pipe()  # SIGCHLD writes a byte here (set_wakeup_fd)
        os.set_blocking(wake, False)
        os.set_blocking(self.woken, False)
        _signal.set_wakeup_fd(wake)
        #: the zygote's own descriptors, closed in every sandbox (the lifeline's read end is kept)
        self.private = [*private, keep_alive, self.woken, wake]
        self.status: dict[int, int] = {}  # a live sandbox's pid -> its status pipe

    def clone(self, args: list[str], fds: list[int]) -> int:
        """Clone PID 1 of a new PID namespace running ``KEY=VALUE... -- ARGV...``; its pid.

        The child never returns. -1 when no clone could be made.
        """
        try:
            split = args.index("--")
            spec, argv = parse(args[:split]), args[split + 1 :]
            if not argv:
                raise SetupError("a malformed request: no command")
        except (ValueError, SetupError) as exc:  # the zygote serves on; this one fails
            report(fds[2], f"luminaguard-sandbox: {exc}\n")  # the host may have given up
            return -1
        # not root: each sandbox in a user namespace of its own, inside the zygote's. The
        # kernel counts RLIMIT_NPROC per user of a namespace: in one shared by all, every
        # sandbox's processes counted against each sandbox's ``pids`` (one starved the rest)
        pid = clone_pid_namespace(0 if self.as_root else CLONE_NEWUSER)
        if pid == 0:
            try:
                become(spec, argv, fds, self)
            except (SetupError, OSError) as exc:
                report(2, f"luminaguard-sandbox: {exc}\n")
            os._exit(SETUP_FAILED)
        return pid

    def start(self, message: bytes, fds: list[int], flags: int = 0) -> None:
        """Clone one sandbox for a request; report its pid, and later its exit, on fds[3].

        A request cut short (``flags`` of its receipt: MSG_TRUNC, MSG_CTRUNC) or without
        its four descriptors is dropped, as the compiled zygote does: its status pipe
        closed unwritten tells the host (never run cut short, never the zygote's death).
        """
        if len(fds) != 4 or flags & (MSG_TRUNC | MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            return
        os.set_inheritable(fds[3], False)  # never reaches a command, whichever sandbox
        try:
            args = message.decode().split("\0")
        except UnicodeDecodeError:
            args = []  # no "--": refused as malformed, reported
        pid = self.clone(args, fds)
        for fd in fds[:3]:
            os.close(fd)
        if pid < 0:
            report(fds[3], f"exit {SETUP_FAILED}\n")
            os.close(fds[3])
            return
        if not report(fds[3], f"pid {pid}\n"):  # nobody will wait for it: end it now
            os.kill(pid, SIGKILL)
        self.status[pid] = fds[3]  # reaped (and the end reported, if still read) all the same

    def reap(self) -> None:
        """Report the exit status of every sandbox that has ended, on its status pipe."""
        try:
            while os.read(self.woken, 512):  # the wake-ups: all read, all answered below
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = self.status.pop(pid, None)
            if fd is not None:
                report(fd, f"exit {exit_code(status)}\n")
                os.close(fd)


def report(fd: int, line: str) -> bool:
    """Write ``line`` on a sandbox's status pipe (or its stderr); whether it got there.

    The host may have closed its end (a spawn cancelled, an event loop gone): a broken
    pipe there ends that report, never the zygote, whose death kills every sandbox.
    """
    try:
        os.write(fd, line.encode())
    except OSError:
        return False
    return True


def exit_code(status: int) -> int:
    """A wait status as a shell would say it: the exit code, or 128 + the killing signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def clone_pid_namespace(flags: int) -> int:
    """fork(2) whose child is PID 1 of a new PID namespace (clone with CLONE_NEWPID | flags).

    One copy of this small process per sandbox, and none left beside it: the zygote
    itself waits for the sandbox and reports its end. Safe here as a raw system call:
    the zygote has one thread and holds no lock. Returns -1 when the clone failed.
    """
    arch = seccomp.ARCHES.get(MACHINE)
    if arch is None:
        return -1
    pid: int = libc.syscall(arch.numbers["clone"], flags | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0)
    return pid


def zygote(channel: int, parent: int) -> int:
    """Clone one sandbox per request received on ``channel`` until it closes.

    Requests are ``KEY=VALUE... -- ARGV...`` joined by NUL bytes, with four file
    descriptors attached (SCM_RIGHTS). Cloning this small, already-started process
    saves every sandbox the interpreter's start-up. Not root: the zygote first enters
    a user namespace of its own (``map_user``), where it may make the sandboxes'.
    """
    import gc
    import socket

    check(libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "pdeathsig")
    if os.getppid() != parent:
        return SETUP_FAILED
    as_root = os.getuid() == 0
    if not as_root:
        map_user()
    gc.disable()  # nothing here makes cycles; a collection would touch every shared page
    gc.freeze()
    service = Service(as_root, channel)
    _, hard = service.files  # a status pipe per live sandbox: as many as allowed
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    _signal.signal(_signal.SIGCHLD, lambda _s, _f: None)  # wakes select() through the pipe
    sock = socket.socket(fileno=channel)
    while True:
        ready, _, _ = select.select([sock.fileno(), service.woken], [], [])
        if service.woken in ready:
            service.reap()
        if channel in ready:
            message, fds, flags, _ = socket.recv_fds(sock, 1 << 20, 4)
            if not message:
                return 0
            service.start(message, fds, flags)


def run(args: list[str]) -> int:
    """One sandbox on this process's stdin, stdout and stderr; its exit status.

    ``helper.py KEY=VALUE... -- ARGV...``: what a zygote does for one request, for a
    person or a test to run by hand.
    """
    as_root = os.getuid() == 0
    if not as_root:
        map_user()
    service = Service(as_root)
    pid = service.clone(args, [0, 1, 2])
    if pid < 0:
        return SETUP_FAILED
    return exit_code(os.waitpid(pid, 0)[1])


def main() -> int:
    """Entry point: ``helper.py --zygote FD PARENT`` or ``helper.py KEY=VALUE... -- ARGV...``."""
    if sys.argv[1:2] == ["--zygote"] and len(sys.argv) == 4:
        return zygote(int(sys.argv[2]), int(sys.argv[3]))
    if "--" not in sys.argv:
        sys.stderr.write("usage: helper.py --zygote FD PARENT | KEY=VALUE... -- ARGV...\n")
        return 2
    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
