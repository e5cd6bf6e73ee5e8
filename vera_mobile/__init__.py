"""vera-mobile: on-device reasoning photo retouching (VeraRetouch-compatible)."""

__version__ = "0.1.0"
