"""Backends: everything that holds model weights or talks to a model server."""
