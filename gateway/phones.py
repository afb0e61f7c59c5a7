"""Phone numbers as people write them → E.164, read as Indonesian when no country code is given."""

import phonenumbers

DEFAULT_REGION = "ID"


def to_e164(raw: str) -> str:
    """``"0812-0000-7801"`` → ``"+6281200007801"``.

    Raises ``ValueError`` when ``raw`` is not a valid number; the message never contains it.
    """
    try:
        number = phonenumbers.parse(raw, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
