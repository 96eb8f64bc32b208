"""Accounts: passwords, email and domain rules, log-in limits, redirects, and site access."""
