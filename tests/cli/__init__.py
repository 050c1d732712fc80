"""Tests of the command line: its JSON contract, errors, help and real processes."""
