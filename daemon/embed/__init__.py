"""Stem vectors: the offline `features` backend (default) and the optional CLAP backend."""
