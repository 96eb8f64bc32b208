"""The report summaries (rollups): folded from the events by the worker, forgotten on erasure."""
