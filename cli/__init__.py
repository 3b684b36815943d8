"""The dnahnet command-line interface (installed as `dnahnet`)."""
