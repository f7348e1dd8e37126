"""Micro-VMs: what QEMU and Firecracker share (backend, machine, pools, folder disks)."""
