"""Procedural construction-kit synthesiser: the demo kit and the test fixtures."""
