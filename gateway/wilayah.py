"""Kecamatan and kelurahan of Kota Tangerang (36.71) and matching of names as people write them.

The table is the official Kemendagri list shipped in ``gateway/data/wilayah.csv``.
A name matches when, after folding (case, accents, spacing and punctuation dropped,
a leading ``Kec.``/``Kecamatan``/``Kel.``/``Kelurahan`` removed), it equals a place's
name or one of its known alternative spellings, or differs from exactly one place by
a single letter (inserted, deleted or replaced). Anything else raises
:class:`UnknownPlace` with up to three close canonical names; its message never
contains the name that was looked up.
"""

import csv
import difflib
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

MAX_SUGGESTIONS = 3

# Other spellings of parts of official names, as folded text (official → alternative).
# Variants that differ only by a space ("Batu Ceper", "Suka Asih", "Karangtengah")
# need no entry: folding removes spaces.
_ALTERNATIVE_SPELLINGS: tuple[tuple[str, str], ...] = (
    ("pinang", "penang"),
    ("neroktog", "nerogtog"),
    ("sumurpacing", "sumurpancing"),
    ("padurenan", "pedurenan"),
)

_PREFIX = re.compile(r"^\s*(?:kecamatan|kelurahan|kec|kel)(?:\.|\b)", re.IGNORECASE)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Kecamatan:
    code: str
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class Kelurahan:
    code: str
    name: str
    kecamatan: Kecamatan


class UnknownPlace(ValueError):
    """A name that matches no place (or more than one). ``suggestions`` are canonical names."""

    def __init__(self, reason: str, suggestions: Iterable[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.suggestions = list(suggestions)[:MAX_SUGGESTIONS]


def fold(name: str) -> str:
    """The comparison form of a place name: ``"Kec. Karang  Tengah"`` → ``"karangtengah"``."""
    without_prefix = _PREFIX.sub("", name, count=1)
    decomposed = unicodedata.normalize("NFKD", without_prefix)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_ALNUM.sub("", ascii_only.lower())


def slugify(name: str) -> str:
    """Routing-key form of a kecamatan name: ``"Karang Tengah"`` → ``"karang-tengah"``."""
    return "-".join(name.lower().split())


@dataclass(frozen=True, slots=True)
class _Table:
    kecamatan: Mapping[str, Kecamatan]  # by code
    kelurahan: Mapping[str, Kelurahan]  # by code
    kecamatan_keys: Mapping[str, str]  # folded spelling → kecamatan code
    kelurahan_keys: Mapping[str, str]  # folded spelling → kelurahan code
    kelurahan_keys_in: Mapping[str, Mapping[str, str]]  # kecamatan code → its spellings
    kelurahan_names: Mapping[str, str]  # kelurahan code → official name


def _spellings(name: str) -> set[str]:
    folded = fold(name)
    keys = {folded}
    for official, alternative in _ALTERNATIVE_SPELLINGS:
        if official in folded:
            keys.add(folded.replace(official, alternative))
    return keys


@cache
def _table() -> _Table:
    text = resources.files("gateway.data").joinpath("wilayah.csv").read_text(encoding="utf-8")
    kecamatan: dict[str, Kecamatan] = {}
    kelurahan: dict[str, Kelurahan] = {}
    for row in csv.DictReader(io.StringIO(text)):
        kec_code, kec_name = row["kode_kecamatan"], row["kecamatan"]
        kec = kecamatan.setdefault(kec_code, Kecamatan(kec_code, kec_name, slugify(kec_name)))
        kelurahan[row["kode_kelurahan"]] = Kelurahan(row["kode_kelurahan"], row["kelurahan"], kec)
    kecamatan_keys = {key: k.code for k in kecamatan.values() for key in _spellings(k.name)}
    kelurahan_keys = {key: k.code for k in kelurahan.values() for key in _spellings(k.name)}
    kelurahan_keys_in: dict[str, dict[str, str]] = {code: {} for code in kecamatan}
    for k in kelurahan.values():
        kelurahan_keys_in[k.kecamatan.code].update(dict.fromkeys(_spellings(k.name), k.code))
    names = {code: k.name for code, k in kelurahan.items()}
    return _Table(kecamatan, kelurahan, kecamatan_keys, kelurahan_keys, kelurahan_keys_in, names)


def _one_edit_apart(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by exactly one inserted, deleted or replaced letter."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) > len(b):
        a, b = b, a
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return a[i + 1 :] == b[i + 1 :] if len(a) == len(b) else a[i:] == b[i + 1 :]
    return True


def _match(folded: str, keys: Mapping[str, str]) -> str | None:
    """The one code ``folded`` names exactly or at one edit; ``None`` when none or several."""
    if folded in keys:
        return keys[folded]
    near = {code for key, code in keys.items() if _one_edit_apart(folded, key)}
    return near.pop() if len(near) == 1 else None


def _suggest(folded: str, keys: Mapping[str, str], names: Mapping[str, str]) -> list[str]:
    close = difflib.get_close_matches(folded, list(keys), n=MAX_SUGGESTIONS * 2, cutoff=0.6)
    suggestions: list[str] = []
    for key in close:
        name = names[keys[key]]
        if name not in suggestions:
            suggestions.append(name)
    return suggestions[:MAX_SUGGESTIONS]


def all_kecamatan() -> tuple[Kecamatan, ...]:
    return tuple(_table().kecamatan.values())


def all_kelurahan() -> tuple[Kelurahan, ...]:
    return tuple(_table().kelurahan.values())


def kecamatan_by_code(code: str) -> Kecamatan:
    try:
        return _table().kecamatan[code]
    except KeyError:
        raise ValueError(f"no kecamatan of Kota Tangerang has the code {code!r}") from None


def kelurahan_by_code(code: str) -> Kelurahan:
    try:
        return _table().kelurahan[code]
    except KeyError:
        raise ValueError(f"no kelurahan of Kota Tangerang has the code {code!r}") from None


def kecamatan_slug(code: str) -> str:
    """The routing-key word of a kecamatan code: ``"36.71.12"`` → ``"karang-tengah"``."""
    return kecamatan_by_code(code).slug


def find_kecamatan(name: str) -> Kecamatan:
    table = _table()
    folded = fold(name)
    code = _match(folded, table.kecamatan_keys) if folded else None
    if code is None:
        names = {c: k.name for c, k in table.kecamatan.items()}
        raise UnknownPlace(
            "is not a kecamatan of Kota Tangerang",
            _suggest(folded, table.kecamatan_keys, names),
        )
    return table.kecamatan[code]


def find_kelurahan(name: str, kecamatan: Kecamatan | None = None) -> Kelurahan:
    """The kelurahan ``name`` means; inside ``kecamatan`` when that is given."""
    table = _table()
    folded = fold(name)
    names = table.kelurahan_names
    scope = table.kelurahan_keys if kecamatan is None else table.kelurahan_keys_in[kecamatan.code]
    code = _match(folded, scope) if folded else None
    if code is not None:
        return table.kelurahan[code]
    if kecamatan is not None and folded and _match(folded, table.kelurahan_keys) is not None:
        raise UnknownPlace(
            "is a kelurahan of another kecamatan than the one given",
            _suggest(folded, scope, names),
        )
    raise UnknownPlace("is not a kelurahan of Kota Tangerang", _suggest(folded, scope, names))
