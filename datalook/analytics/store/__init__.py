"""The columnar copy of the counted events that the acquisition reports read with DuckDB.

rows.py is the one schema of the copy and the one function that turns stored events into
its rows (each with its whole visit). The fold keeps Parquet segments of those rows per
site and UTC day or hour (build.py, upkeep.py), valid while their row in the database
exists (models.py); whatever could change a segment's rows deletes that row (invalidate.py,
by the rule of edges.py), and unused files go later (gc.py). read.events_relation reads
the valid segments and, for the spans they do not cover, the events table.
"""
