"""Synthetic traffic and what volume does to the bill.

Owns seeded traffic plans and their MIME bytes (traffic), running them through the
pipeline directly or over SMTP (run), the volume sweep (sweep) and scenario files
(scenario). It drives the pipeline and the service from above; nothing below may
import it.
"""
