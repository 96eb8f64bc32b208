"""API keys: the token format, creating, rotating, authenticating, and the show-once page."""
