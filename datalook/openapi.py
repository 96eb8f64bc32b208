"""The OpenAPI 3.1 description of the public ingestion API."""

from __future__ import annotations


def document(server_url: str) -> dict:
    """Return the OpenAPI document for the given server base URL."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "DataLook ingestion API", "version": "1.0.0"},
        "servers": [{"url": server_url}],
        "paths": {},
    }
