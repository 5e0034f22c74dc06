"""CLI commands: one module each, every module exposing register(app)."""
