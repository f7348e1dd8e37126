"""One module per subcommand; each registers its parser and returns an exit code."""
