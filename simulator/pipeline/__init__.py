"""The intake pipeline: bytes in, a delivery with its outcome, users, issue and seat
events out.

Owns parsing (parse), noise rules (classify), sender roles and users (roles),
dedupe and threading (conversations), signed Message-IDs (signing), the seat
ledger (ledger), automatic-email decisions (notify), one delivery's whole path
(intake) and batches of them (batch). Every path, SMTP, files, web form,
simulate and the spool processor, runs this one pipeline. It is synchronous and
takes a Session; only batch.py opens transactions, through Store. It must never
import asyncio, sockets, the listener, the web app or the reports.
"""
