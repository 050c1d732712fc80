"""The command line (Typer): parses options, calls the library, renders the result."""

from simulator.cli.app import app

__all__ = ["app"]
