"""Tests of synthetic traffic, the sweep and scenario files."""
