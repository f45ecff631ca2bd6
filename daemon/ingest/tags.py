"""Descriptive tags from name tokens and audio descriptors (thresholds in rules/tags.toml)."""

from __future__ import annotations

from daemon.ingest.rules import AnalysisRules, TagRule, longest_match, name_parts


def tags_from_name(name: str, rules: AnalysisRules) -> set[str]:
    """Tags whose phrases appear in the file name or any of its folders."""
    parts = name_parts(name)
    return {tag for tag, phrases in rules.tag_phrases.items()
            if any(longest_match(tokens, phrases) for tokens in parts)}


def tags_from_audio(descriptors: dict[str, float], *, category: str,
                    rules: AnalysisRules) -> set[str]:
    """Tags whose descriptor rule holds for this stem's `descriptors` and `category`."""
    return {rule.tag for rule in rules.tag_rules if _applies(rule, descriptors, category)}


def _applies(rule: TagRule, descriptors: dict[str, float], category: str) -> bool:
    if (rule.categories and category not in rule.categories) or category in rule.exclude:
        return False
    value = descriptors.get(rule.descriptor)
    if value is None:
        return False
    return ((rule.above is None or value > rule.above)
            and (rule.below is None or value < rule.below))


def derive_tags(*, name: str, descriptors: dict[str, float], category: str,
                rules: AnalysisRules) -> tuple[str, ...]:
    """Sorted union of name and audio tags."""
    found = tags_from_name(name, rules) | tags_from_audio(descriptors, category=category,
                                                          rules=rules)
    return tuple(sorted(found))
