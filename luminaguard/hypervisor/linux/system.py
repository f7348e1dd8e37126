"""What the namespace sandbox and gVisor take from the host system, and ``nobody``.

Imports nothing: ``sandbox.helper`` (started as ``python3 -I -S``, on the spawn path)
imports it, as do ``gvisor.bundle`` and the tests.
"""

#: Host folders every sandbox sees read-only, by name under ``/`` (those that exist).
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")

#: The overflow uid and gid, ``nobody``: the helper's user when it is given no ``uid``.
#: Sandboxes run as their own uids (``users``), never as this one.
NOBODY = 65534
