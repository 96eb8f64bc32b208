"""The browser SDK's own rules: allowed origins, bots, the cookieless daily visitor id,
site settings, and the tracker script (POST /collect itself is ingest/collect.py)."""
