"""DataLook: product analytics for SaaS apps."""
