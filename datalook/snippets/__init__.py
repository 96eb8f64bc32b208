"""Ready-to-paste code snippets in 12 runtimes (render.py), one Jinja template per runtime."""
