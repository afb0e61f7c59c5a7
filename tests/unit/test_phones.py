import pytest

from gateway.phones import to_e164


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("0812-0000-7801", "+6281200007801"),
        ("+62 813 0000 2211", "+6281300002211"),
        ("62 857 0000 4410", "+6285700004410"),
        ("6281200007801", "+6281200007801"),
        ("081200007802", "+6281200007802"),
        ("0812 0000 7802", "+6281200007802"),
        ("(021) 5570 0000", "+622155700000"),
        ("021-5570-0000", "+622155700000"),
        ("+1 202 555 0123", "+12025550123"),
    ],
)
def test_to_e164(written: str, e164: str) -> None:
    assert to_e164(written) == e164


@pytest.mark.parametrize(
    "written",
    ["12345", "08", "0812000078011234", "", "abc", "+62", "telepon saya", "1" * 300],
)
def test_not_a_phone_number(written: str) -> None:
    with pytest.raises(ValueError, match="phone number") as caught:
        to_e164(written)
    if written:
        assert written not in str(caught.value)
    digits = "".join(ch for ch in written if ch.isdigit())
    if digits:
        assert digits not in str(caught.value)
