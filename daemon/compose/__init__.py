"""Prompt → Intent → Plan, from the editable rules in rules/. No audio, no database."""
