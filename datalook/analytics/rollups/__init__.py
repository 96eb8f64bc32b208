"""The report summaries (rollups): folded from the events by the fold process
(analytics.worker) and before each report is read, forgotten on erasure.

models (the tables), accumulate (events into per-bucket increments), write (increments into
the tables), fold (claim a batch after the cursor, accumulate, write, advance), forget
(take deleted events out).
"""
