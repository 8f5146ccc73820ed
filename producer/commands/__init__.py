"""Subcommands that live in their own modules, registered on ``producer.cli.main``."""
