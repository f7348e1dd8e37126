"""GitOps: a source of documents (a folder or git), its desired state, the reconciler."""
