"""Tests of the pipeline stages, one file per module of simulator/pipeline/."""
