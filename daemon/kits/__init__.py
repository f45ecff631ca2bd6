"""Kits as first-class things: a profile per kit (genre family, tempo, keys, sound) that the
renderer reasons about before it reasons about stems."""
