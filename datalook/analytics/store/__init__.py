"""The columnar copy of the counted events that the acquisition reports read with DuckDB.

rows.py is the one schema of the copy and the one function that turns stored events into
its rows (each with its whole visit), both for the Parquet segments the fold writes and for
the spans of a range that no valid segment covers yet.
"""
