"""Multi-step workflows built on the dnahnet library."""
