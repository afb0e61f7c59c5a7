import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.adapters.sealing import (
    KEY_BYTES,
    MAGIC,
    Sealer,
    key_id_of,
    new_data_key,
    parse_keys,
    row_aad,
)
from gateway.errors import SealedDataUnreadable, StoreUnavailable

OLD = new_data_key("old")
NEW = new_data_key("new")
AAD = row_aad("cases", "sealed", "urn:tangerangkota:kdrt:01JDXK7Q2M8W3V5T9R6N4B2C1A")
PLAIN = b"Dewi Lestari, 3671114107970001"


def test_sealed_data_opens_and_does_not_show_the_plain_text() -> None:
    sealer = Sealer.from_setting(OLD)
    sealed = sealer.seal(PLAIN, AAD)
    assert sealed.startswith(MAGIC)
    assert b"Dewi" not in sealed
    assert b"3671114107970001" not in sealed
    assert key_id_of(sealed) == "old"
    assert sealer.open(sealed, AAD) == PLAIN


def test_each_seal_uses_a_fresh_nonce() -> None:
    sealer = Sealer.from_setting(OLD)
    assert sealer.seal(PLAIN, AAD) != sealer.seal(PLAIN, AAD)


def test_the_first_key_seals_and_every_key_opens() -> None:
    old = Sealer.from_setting(OLD)
    rotated = Sealer.from_setting(f"{NEW},{OLD}")
    written_before = old.seal(PLAIN, AAD)
    written_after = rotated.seal(PLAIN, AAD)
    assert key_id_of(written_after) == "new"
    assert rotated.current_kid == "new"
    assert rotated.key_ids == ("new", "old")
    assert rotated.open(written_before, AAD) == PLAIN
    assert rotated.open(written_after, AAD) == PLAIN


def test_a_missing_key_is_named_not_guessed() -> None:
    sealed = Sealer.from_setting(OLD).seal(PLAIN, AAD)
    with pytest.raises(SealedDataUnreadable, match=r"'old'.*does not hold.*'new'"):
        Sealer.from_setting(NEW).open(sealed, AAD)


def test_a_different_key_under_the_same_id_is_refused() -> None:
    sealed = Sealer.from_setting(OLD).seal(PLAIN, AAD)
    other = Sealer.from_setting(new_data_key("old"))
    with pytest.raises(SealedDataUnreadable, match="different key under that id"):
        other.open(sealed, AAD)


def test_a_value_moved_to_another_row_does_not_open() -> None:
    sealer = Sealer.from_setting(OLD)
    sealed = sealer.seal(PLAIN, AAD)
    with pytest.raises(SealedDataUnreadable, match="altered or moved"):
        sealer.open(sealed, row_aad("cases", "sealed", "urn:other"))
    with pytest.raises(SealedDataUnreadable):
        sealer.open(sealed, row_aad("reports", "raw", "urn:tangerangkota:kdrt:x"))


def test_an_edited_key_id_does_not_open_even_with_both_keys() -> None:
    both = Sealer.from_setting(f"{OLD},{new_data_key('olx')}")
    sealed = both.seal(PLAIN, AAD)
    edited = sealed.replace(b"old", b"olx", 1)
    with pytest.raises(SealedDataUnreadable):
        both.open(edited, AAD)


@pytest.mark.parametrize(
    "stored",
    [b"", b"{}", b'{"nama": "x"}', MAGIC, MAGIC + b"\x03old" + b"\x00" * 5],
    ids=["empty", "json", "plain", "magic-only", "cut-short"],
)
def test_anything_not_sealed_is_a_clear_error(stored: bytes) -> None:
    with pytest.raises(SealedDataUnreadable) as caught:
        Sealer.from_setting(OLD).open(stored, AAD)
    assert isinstance(caught.value, StoreUnavailable)


@given(st.binary(max_size=300))
def test_any_bytes_are_opened_or_refused_cleanly(stored: bytes) -> None:
    sealer = Sealer.from_setting(OLD)
    try:
        sealer.open(stored, AAD)
    except SealedDataUnreadable:
        return
    pytest.fail("random bytes opened")


@given(st.binary(max_size=2000), st.binary(max_size=100))
def test_round_trip(plain: bytes, aad: bytes) -> None:
    sealer = Sealer.from_setting(OLD)
    assert sealer.open(sealer.seal(plain, aad), aad) == plain


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no data key"),
        ("nokey", "kid:base64key"),
        ("bad id!:AAAA", "kid:base64key"),
        ("k1:not base64!", "not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes, not 5"),
        pytest.param(f"{OLD},{OLD}", "given twice", id="one-key-given-twice"),
    ],
)
def test_bad_key_settings_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_keys(text)


def test_key_settings_may_be_comma_or_space_separated() -> None:
    assert list(parse_keys(f"{NEW} {OLD}")) == ["new", "old"]
    assert list(parse_keys(f" {NEW},\n{OLD} ")) == ["new", "old"]
    assert all(len(key) == KEY_BYTES for key in parse_keys(OLD).values())


def test_a_new_data_key_is_a_valid_setting() -> None:
    made = new_data_key()
    kid = made.split(":", 1)[0]
    assert list(parse_keys(made)) == [kid]
    with pytest.raises(ValueError, match="key id"):
        new_data_key("no spaces")
