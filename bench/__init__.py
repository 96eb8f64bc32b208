"""The ingestion benchmark (`make bench`)."""
