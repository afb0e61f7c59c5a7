"""AMQP topic patterns over the event routing keys ``<entity>.<event>.<kecamatan>.<risk>``.

A pattern is dot-separated words; ``*`` stands for exactly one word and ``#`` for zero
or more, each only as a whole word (``case.*.cipondoh.#``, ``status.#``). Matching here
is the broker's own rule, so the partner router can choose subscriptions without asking
the broker.
"""

import re
from functools import lru_cache

KEY_WORDS = 4
ONE_WORD = "*"
ANY_WORDS = "#"
MAX_PATTERN_CHARS = 255  # the broker's limit on a binding key

_WORD = re.compile(r"[a-z0-9_-]+")


class InvalidPattern(ValueError):
    """A topic pattern that is malformed or can never match a routing key."""


def check_pattern(pattern: str) -> str:
    """``pattern`` itself when valid; raises ``InvalidPattern`` saying why not."""
    if not pattern:
        raise InvalidPattern("a topic pattern cannot be empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidPattern(f"a topic pattern has at most {MAX_PATTERN_CHARS} characters")
    words = pattern.split(".")
    for position, word in enumerate(words, start=1):
        if word in (ONE_WORD, ANY_WORDS):
            continue
        if not word:
            raise InvalidPattern(f"word {position} is empty")
        if ONE_WORD in word or ANY_WORDS in word:
            raise InvalidPattern(f"word {position}: '*' and '#' must stand alone as a word")
        if not _WORD.fullmatch(word):
            raise InvalidPattern(f"word {position}: only a-z, 0-9, '_' and '-' are allowed")
    fixed = sum(word != ANY_WORDS for word in words)
    if fixed > KEY_WORDS or (ANY_WORDS not in words and fixed != KEY_WORDS):
        raise InvalidPattern(
            f"routing keys have {KEY_WORDS} words (<entity>.<event>.<kecamatan>.<risk>); "
            "this pattern can never match one"
        )
    return pattern


def matches(pattern: str, routing_key: str) -> bool:
    """Whether the broker would route ``routing_key`` through a binding of ``pattern``."""
    return _matches(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=4096)
def _matches(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    if not pattern:
        return not key
    head, rest = pattern[0], pattern[1:]
    if head == ANY_WORDS:
        return any(_matches(rest, key[skip:]) for skip in range(len(key) + 1))
    if not key:
        return False
    return (head == ONE_WORD or head == key[0]) and _matches(rest, key[1:])


def matches_any(patterns: tuple[str, ...] | list[str], routing_key: str) -> bool:
    return any(matches(pattern, routing_key) for pattern in patterns)
