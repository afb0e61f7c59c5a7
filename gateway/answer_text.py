"""A recipient's answer as the delivery log, the parking lot and the ops console may keep
it. A recipient can echo what it was sent ("nama 'Dewi Lestari' sudah terdaftar"): every
personal value of the message sent, and each of its words, is masked in the answer's
text before it becomes a park reason, then the log scrubber masks phone numbers and NIKs.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

from gateway.logs import REDACTED, SENSITIVE_KEYS, scrub_text

# shorter values and words ("P", "RT", "di", "03") would mask too much of the rest
MIN_WORD_CHARS = 3
_WORD = re.compile(r"\w+")


def _personal_leaves(value: Any, key: str = "") -> Iterator[str]:
    """Values whose own field (the nearest key above them) is S2/S3: a victim's name and
    age, not her sex or age band."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _personal_leaves(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _personal_leaves(item, key)
    elif key.lower() in SENSITIVE_KEYS and not isinstance(value, bool) and value is not None:
        yield str(value)


def _echoes(sent: bytes) -> list[str]:
    """Every personal value of ``sent`` and each of its words, longest first."""
    try:
        document = json.loads(sent)
    except ValueError:
        return []
    found: set[str] = set()
    for leaf in _personal_leaves(document):
        for text in (leaf, json.dumps(leaf)[1:-1], *_WORD.findall(leaf)):
            if len(text) >= MIN_WORD_CHARS:
                found.add(text)
    return sorted(found, key=len, reverse=True)


def masked_answer(answer: str, sent: bytes) -> str:
    """``answer`` without any personal value of ``sent``, whole or in part, or any phone
    number or NIK."""
    echoes = _echoes(sent)
    if echoes:
        pattern = "|".join(re.escape(e) for e in echoes)
        answer = re.sub(pattern, REDACTED, answer, flags=re.IGNORECASE)
    return scrub_text(answer)
