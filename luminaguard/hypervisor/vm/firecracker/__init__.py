"""The ``firecracker`` backend: Firecracker driven through its API socket."""
