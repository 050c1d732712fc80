"""Tests of group commit, the spool and its processor, outages and racing listeners."""
