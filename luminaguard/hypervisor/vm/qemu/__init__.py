"""The ``qemu`` backend: QEMU microvm (KVM where real, TCG otherwise), snapshots, egress."""
