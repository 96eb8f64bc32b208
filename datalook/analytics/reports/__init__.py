"""The reports of a site over a range, read from the rollups, and their JSON and CSV shapes."""
