"""Errors the library raises; the CLI turns each into one `Error: ...` line."""


class IntakeSimError(Exception):
    """Base of every error a user should see as one line, not a traceback."""


class OrgFileError(IntakeSimError):
    """The org file is missing, not TOML, or breaks the schema."""


class StoreUnavailable(IntakeSimError):
    """The database cannot be reached or written; deliveries get 451."""


class ConfigError(IntakeSimError):
    """Options that contradict each other or name something that does not exist."""


class SchemaMismatch(IntakeSimError):
    """The database is at another schema revision than this intake-sim needs."""


class NotFound(IntakeSimError):
    """An issue or message asked for by number that the database does not hold."""
