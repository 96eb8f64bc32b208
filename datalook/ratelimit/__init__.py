"""Rate limits: exact sliding-window storages for `limits` and the rules DataLook applies.

window.py states the rule every storage keeps; mapped.py (the embedded default) and
redis_window.py (several hosts) implement it; rules.py spends and reports limits without
Flask (the ingestion API uses it); limiter.py wires flask-limiter for the pages.
"""

# Importing the storages registers their URI schemes (datalook+mmap, datalook+redis) with
# limits, which finds a storage class by scheme when flask-limiter starts.
from . import mapped, redis_window  # noqa: F401
