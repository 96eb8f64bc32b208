"""Funnels: definitions, matching, unsaved and saved reports, saved funnels' derivations."""
