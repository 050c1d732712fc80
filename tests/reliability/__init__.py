"""Tests of crash-test, fuzz and their property-based checks."""
