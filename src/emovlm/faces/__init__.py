"""Face detection, main-face choice, cropping and tracking."""
