"""One module per ``evsite`` subcommand; each exposes ``register(subparsers)``."""
