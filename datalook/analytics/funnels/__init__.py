"""Funnels: definitions, per-visitor matching, unsaved reads and saved funnels' derivations."""
