"""emovlm: recognise human emotions in face videos and images with VLMs, and measure where they fail."""

__version__ = "0.1.0"
