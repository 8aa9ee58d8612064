"""The HTTP API: thin Litestar routes over the services."""
