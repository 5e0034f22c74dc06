"""Vision-only facial expression models ported to PyTorch from weights in registry packages."""
