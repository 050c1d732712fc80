"""The command line (Typer): parses options, calls the library, renders the result.

Split by command family, with one `app`. It holds no loop over messages, no SQL
and no date parsing; library errors become one `Error:` line and exit status 1.
Only this package imports typer and rich. Nothing imports it but __main__.
"""

# Importing a command module registers its commands on `app`.
from simulator.cli import (  # noqa: F401
    database,
    demo,
    fetch,
    forecast,
    listener,
    listings,
    mail,
    reliability,
    show,
    simulate,
)
from simulator.cli.app import app, main

__all__ = ["app", "main"]
