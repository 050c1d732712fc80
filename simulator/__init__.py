"""intake-sim: an email-intake licensing simulator."""

__version__ = "0.1.0"
