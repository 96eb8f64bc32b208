"""Ingestion: POST /event and POST /events, a Flask-free WSGI app of its own.

app.py routes and answers (PATHS, its own 404/405); pipeline.py is the path of one call;
body.py reads the body; schema.py is the one description of an event (validation and the
OpenAPI schema); pii.py strips personal data; storage.py commits; usage.py counts per key.
"""
