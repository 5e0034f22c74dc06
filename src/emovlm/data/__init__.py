"""Dataset adapters: each yields Samples (paths and gold labels, never pixels) for a split."""
