"""The run explorer: a local web app (and a static HTML export) over run folders."""

DEFAULT_HOST = "127.0.0.1"
"""The explorer listens on loopback only unless told otherwise."""

MAX_STATIC_SAMPLES = 1000
"""Samples of each run put into a static page unless --max-samples says otherwise."""
