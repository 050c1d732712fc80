"""Proof that acknowledged mail is never lost: crash-test, fuzz and their harness.

Owns `crash-test` (SIGKILL under load, then an audit), `fuzz` and its hostile mail
generator, and the harness that runs a real `serve` child process, the one place
that reads its "listening on" log line. It drives the listener from outside;
nothing below may import it.
"""
