"""The defaults the command line shows in its options: the listener's address and
limits, the database URL, the MIME limits and the readiness timeout.

Each is defined here once and imported by the module that applies it (smtp.server,
store.db, pipeline.parse, smtp.readiness), so that `intake-sim --help` can name
them without importing aiosmtpd or SQLAlchemy. Plain constants; this module
imports nothing.
"""

from __future__ import annotations

# The SMTP listener (smtp/server.py).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2525
DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
IDLE_TIMEOUT_SECONDS = 300
SESSION_TIMEOUT_SECONDS = 1800
MAX_CONNECTIONS = 100
# A quarter of the listener at most for one address, so that one client dribbling
# bytes on every connection it can open leaves the rest to everyone else.
MAX_CONNECTIONS_PER_CLIENT = 25
# From a command line's first byte to its end; an honest client sends one in a packet.
COMMAND_TIMEOUT_SECONDS = 60
# From the 354 to the final ".": RFC 5321 4.5.3.2.6 asks a server to wait 10 minutes.
DATA_TIMEOUT_SECONDS = 600
# RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients per message.
MAX_RECIPIENTS = 100
MAX_HEADERS = 1000
MAX_HEADER_SIZE = 512 * 1024
# Message data held by all sessions at once (and a quarter of it by one client address).
MAX_DATA_MEMORY = 256 * 1024 * 1024
# Error tarpit, as Postfix's soft and hard error limits: refusals of one client address
# before each further one waits 1 s, and refusals in one session before 421 and close.
ERROR_SOFT_LIMIT = 10
ERROR_HARD_LIMIT = 20
# Cost tarpit (smtp/server.py ClientCosts): an address whose median cost over its last
# COST_SAMPLES messages (listener CPU) is over COST_ALLOWANCE_MS and over COST_RATIO
# times the cheapest address active in the last COST_ACTIVE_SECONDS has each reply
# after DATA put back by COST_FACTOR times the message's cost (it gets about
# 1/(1 + factor) of the listener); no one wait is longer than COST_WAIT_CAP_SECONDS.
COST_ALLOWANCE_MS = 3
COST_FACTOR = 199
COST_RATIO = 4
COST_SAMPLES = 5
COST_ACTIVE_SECONDS = 60.0
COST_WAIT_CAP_SECONDS = 10.0

# The database (store/db.py).
DEFAULT_DB_URL = "sqlite:///intake.db"
SQLITE_BUSY_TIMEOUT_MS = 5000

# The spool of `serve --ack spool` (delivery/spool_postgres.py). Its rows are hashed by
# sender into this many partitions, and a PostgreSQL processor holds whole partitions,
# so that one sender's mail is run in order while other senders' runs beside it.
SPOOL_PARTITIONS = 64
# Spool processors a listener starts (`serve --processors`); more than one needs PostgreSQL.
SPOOL_PROCESSORS = 1

# MIME limits (pipeline/parse.py): deeper or more is quarantined.
MAX_MIME_DEPTH = 50
MAX_MIME_PARTS = 1000
# Header fields in the header section of any one MIME part but the message's own
# (that one is bounded by the listener's --max-headers, at DATA).
MAX_PART_HEADERS = 1000

# `intake-sim ready` (smtp/readiness.py).
DEFAULT_TIMEOUT_SECONDS = 5.0
