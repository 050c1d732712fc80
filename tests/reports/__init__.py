"""Tests of the read side, simulator/reports/."""
