"""Metrics, bootstrap intervals, collapse diagnostics, scoring and reports."""
