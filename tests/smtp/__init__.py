"""Tests of the SMTP side modules of simulator/smtp/."""
