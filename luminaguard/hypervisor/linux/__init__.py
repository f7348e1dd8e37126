"""Linux facilities the namespace sandbox and gVisor share: cgroups, seccomp, users, disks."""
