"""The `impasto` command line: a client of the daemon's public API, plus `serve`."""
