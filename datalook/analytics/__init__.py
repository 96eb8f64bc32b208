"""Analytics: summaries maintained from the events, and the reports read from them."""
