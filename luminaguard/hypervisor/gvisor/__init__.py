"""The ``gvisor`` backend: runsc, the user-space kernel, with an OCI bundle per agent."""
