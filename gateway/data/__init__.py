"""Reference tables shipped with the gateway (Kemendagri area codes of Kota Tangerang)."""
