"""One blueprint per area of the app, each with a module-level `bp`."""
