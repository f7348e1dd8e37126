"""GitOps sources: the documents of a folder or a git repository at one revision."""
