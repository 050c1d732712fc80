"""Tests of the pure licensing arithmetic, worked by hand."""
