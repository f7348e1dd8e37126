"""The user interface layer: the ``luminaguard`` command and its renderers."""
