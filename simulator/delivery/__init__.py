"""Getting acknowledged mail to the pipeline: group commit and the spool.

Owns the group-commit writer (one writer thread, one transaction per batch, the
250 only after COMMIT) and the spool of `serve --ack spool` (one module per
backend) with its processor process. It calls the pipeline; it must never import
the SMTP listener, the web app or the service wiring above it.
"""
