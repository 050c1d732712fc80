"""SMTP on both sides: the listener that receives intake mail and the client that
sends it.

Owns the aiosmtpd handler and server with their limits, every reply line and its
parser, fault injection (chaos), the one SMTP client (send, simulate, crash-test,
fuzz, the outbox relay), reading mail files, the outbox relay sender and the
readiness check. It hands mail to delivery/; it must never import the web app, the
service wiring or the commands.
"""
