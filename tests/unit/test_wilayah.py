import re

import pytest

from gateway import wilayah
from gateway.wilayah import (
    UnknownPlace,
    all_kecamatan,
    all_kelurahan,
    find_kecamatan,
    find_kelurahan,
    fold,
    kecamatan_by_code,
    kecamatan_slug,
)


def test_the_table_is_kota_tangerang() -> None:
    assert len(all_kecamatan()) == 13
    assert len(all_kelurahan()) == 104
    for kel in all_kelurahan():
        assert kel.code.startswith(kel.kecamatan.code + ".")
        assert re.fullmatch(r"36\.71\.\d{2}\.\d{4}", kel.code)


def test_kelurahan_names_are_unique_in_the_city() -> None:
    folded = [fold(k.name) for k in all_kelurahan()]
    assert len(set(folded)) == len(folded)


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("Pinang", "36.71.11"),
        ("PINANG", "36.71.11"),
        ("  pinang ", "36.71.11"),
        ("Kec. Pinang", "36.71.11"),
        ("kec.pinang", "36.71.11"),
        ("Kecamatan Pinang", "36.71.11"),
        ("Penang", "36.71.11"),
        ("Batu Ceper", "36.71.03"),
        ("Batuceper", "36.71.03"),
        ("Karang Tengah", "36.71.12"),
        ("Karangtengah", "36.71.12"),
        ("karang-tengah", "36.71.12"),
        ("Karang  Tengah.", "36.71.12"),
        ("Cipondh", "36.71.05"),
        ("Cipondohh", "36.71.05"),
        ("Larongan", "36.71.13"),
        ("Tangerang", "36.71.01"),
        ("Jatiuwung", "36.71.02"),
        ("Cilédug", "36.71.06"),
    ],
)
def test_find_kecamatan(written: str, code: str) -> None:
    assert find_kecamatan(written).code == code


@pytest.mark.parametrize(
    ("written", "kecamatan", "code"),
    [
        ("Sudimara Pinang", "Pinang", "36.71.11.1002"),
        ("Kel. Sudimara Penang", None, "36.71.11.1002"),
        ("Nerogtog", "Pinang", "36.71.11.1003"),
        ("Neroktog", None, "36.71.11.1003"),
        ("Suka Asih", "Tangerang", "36.71.01.1002"),
        ("Suka Jadi", "Karawaci", "36.71.07.1014"),
        ("Sumur Pancing", None, "36.71.07.1008"),
        ("Sumur Pacing", "Karawaci", "36.71.07.1008"),
        ("Pedurenan", "Karang Tengah", "36.71.12.1006"),
        ("kenanga", "CIPONDOH", "36.71.05.1005"),
        ("Kenang", "Cipondoh", "36.71.05.1005"),
        ("Kelurahan Kelapa Indah", None, "36.71.01.1006"),
        ("Kelapa Indah", "Tangerang", "36.71.01.1006"),
        ("Kunciran Jya", "Pinang", "36.71.11.1006"),
        ("Jatiuwung", "Cibodas", "36.71.09.1006"),
        ("Karang Tengah", "Karang Tengah", "36.71.12.1001"),
        ("Pinang", "Pinang", "36.71.11.1001"),
    ],
)
def test_find_kelurahan(written: str, kecamatan: str | None, code: str) -> None:
    kec = find_kecamatan(kecamatan) if kecamatan else None
    assert find_kelurahan(written, kec).code == code


@pytest.mark.parametrize(
    ("written", "kecamatan", "reason", "suggested"),
    [
        ("Menteng", None, "not a kelurahan", None),
        ("Kenanga", "Pinang", "another kecamatan", None),
        ("Jatiuwung", "Jatiuwung", "another kecamatan", None),
        ("Cibodas Bari", None, "not a kelurahan", {"Cibodas Sari", "Cibodas Baru"}),
        ("Poris Gaya", "Batuceper", "not a kelurahan", {"Poris Gaga", "Poris Jaya"}),
        ("Kenang", None, "not a kelurahan", {"Kenanga"}),
        ("", None, "not a kelurahan", None),
        ("Kel.", None, "not a kelurahan", None),
    ],
)
def test_unknown_kelurahan(
    written: str, kecamatan: str | None, reason: str, suggested: set[str] | None
) -> None:
    kec = find_kecamatan(kecamatan) if kecamatan else None
    with pytest.raises(UnknownPlace) as caught:
        find_kelurahan(written, kec)
    assert reason in caught.value.reason
    assert len(caught.value.suggestions) <= wilayah.MAX_SUGGESTIONS
    if suggested is not None:
        assert suggested <= set(caught.value.suggestions)
    if written:
        assert written not in str(caught.value)


@pytest.mark.parametrize("written", ["Menteng", "Kota Tangerang", "Serpong", "", "Pi"])
def test_unknown_kecamatan(written: str) -> None:
    with pytest.raises(UnknownPlace) as caught:
        find_kecamatan(written)
    assert caught.value.reason == "is not a kecamatan of Kota Tangerang"
    assert len(caught.value.suggestions) <= wilayah.MAX_SUGGESTIONS


def test_suggestions_are_canonical_names() -> None:
    with pytest.raises(UnknownPlace) as caught:
        find_kecamatan("Cipondok Baru")
    assert caught.value.suggestions[0] == "Cipondoh"


@pytest.mark.parametrize(
    ("code", "slug"),
    [
        ("36.71.12", "karang-tengah"),
        ("36.71.11", "pinang"),
        ("36.71.01", "tangerang"),
        ("36.71.03", "batuceper"),
    ],
)
def test_kecamatan_slug(code: str, slug: str) -> None:
    assert kecamatan_slug(code) == slug


def test_every_slug_is_a_routing_key_word() -> None:
    slugs = [kecamatan_slug(k.code) for k in all_kecamatan()]
    assert len(set(slugs)) == 13
    for slug in slugs:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", slug)


@pytest.mark.parametrize("code", ["36.71", "36.71.14", "36.71.11.1002", ""])
def test_unknown_kecamatan_code(code: str) -> None:
    with pytest.raises(ValueError, match="no kecamatan"):
        kecamatan_slug(code)
    with pytest.raises(ValueError, match="no kecamatan"):
        kecamatan_by_code(code)


@pytest.mark.parametrize(
    ("written", "folded"),
    [
        ("Kec. Karang  Tengah", "karangtengah"),
        ("Kecamatan Batu-Ceper", "batuceper"),
        ("KEL. Suka Asih", "sukaasih"),
        ("Kelapa Indah", "kelapaindah"),
        ("Kel Kelapa Indah", "kelapaindah"),
        ("Cilédug", "ciledug"),
    ],
)
def test_fold(written: str, folded: str) -> None:
    assert fold(written) == folded
