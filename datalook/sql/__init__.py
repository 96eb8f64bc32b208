"""The database underneath: connections and locks (connections.py), statements compiled
once for the hot path (compiled.py), SQLite WAL checkpoints off the writers' path."""
