"""Command line: argument parsing and wiring only; one module per command group."""

from selnet.cli.main import main

__all__ = ["main"]
