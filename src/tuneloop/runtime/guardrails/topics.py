"""Denied topics by keyword lists: a topic is denied when any of its keywords appears."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from tuneloop.errors import ConfigError
from tuneloop.runtime.guardrails.base import Finding
from tuneloop.runtime.guardrails.text import Detector, non_overlapping


def topic_detector(topics: Mapping[str, Sequence[str]]) -> Detector:
    """A detector finding each topic's keywords as whole words, case-insensitively.

    Keywords are literal phrases (``"legal advice"``); any whitespace between their
    words matches. A finding's kind is the topic's name.

    Raises:
        ConfigError: no topics, a topic without keywords, or an empty keyword.
    """
    if not topics:
        raise ConfigError("denied_topics needs `topics:` mapping each topic to its keywords")
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for topic, keywords in topics.items():
        cleaned = [keyword.strip() for keyword in keywords]
        if not cleaned or not all(cleaned):
            raise ConfigError(
                f"denied topic {topic!r} needs a non-empty list of non-empty keywords"
            )
        alternatives = "|".join(
            r"\s+".join(re.escape(word) for word in keyword.split())
            for keyword in sorted(cleaned, key=len, reverse=True)
        )
        compiled.append((topic, re.compile(rf"(?i)(?<!\w)(?:{alternatives})(?!\w)")))

    def detect(text: str) -> list[Finding]:
        return non_overlapping(
            Finding(topic, match.start(), match.end())
            for topic, pattern in compiled
            for match in pattern.finditer(text)
        )

    return detect
