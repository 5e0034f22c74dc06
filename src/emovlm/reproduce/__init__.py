"""Recipes that reproduce the source papers' experiments in one command, with their report."""
