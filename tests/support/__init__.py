"""Helpers the tests share: databases, listeners, mail, sample data, and real peers
(an SMTP catcher, a TCP forwarder, `intake-sim` child processes).

Fixtures and pytest hooks stay in tests/conftest.py, which imports what it needs
from here; test modules import helpers from here, never from conftest or from
one another.
"""
