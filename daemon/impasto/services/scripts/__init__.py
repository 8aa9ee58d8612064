"""AUTOMATIC1111's selectable scripts, expanded into ordinary queued jobs (docs/compat.md).

``base`` holds the interface a script implements, ``registry`` the list of scripts.
"""
