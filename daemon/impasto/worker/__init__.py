"""The inference worker process and the framed pipe protocol the daemon speaks with it."""
