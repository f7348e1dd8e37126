"""The ``sandbox`` backend: Linux namespaces, a pivoted read-only root, seccomp, cgroups."""
