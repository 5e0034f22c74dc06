"""Prompt templates (Jinja2 files) and their loader."""
