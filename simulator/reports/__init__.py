"""What the listings and the report say: rows, their columns, the summary and charts.

Owns the rows behind every listing and JSON shape, the column lists, the report
with its month-by-month view, and the PNG plots. It reads the store and calls
licensing/ to price seats; it never writes, and must never import the pipeline,
the listener, the web app or the commands.
"""
