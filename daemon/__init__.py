"""Traum-Engine: a headless generative-music daemon for construction kits."""

__version__ = "0.1.0"
