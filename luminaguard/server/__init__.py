"""The control plane: `luminaguard serve`."""
