"""The records of the reference tables (what ``IdentityStore.import_reference`` keeps opaque).

A record is its fields in a fixed order joined by ``\\x1f`` (the ASCII unit separator, which no
field of these files carries): building one is a join of the file's own cells, which keeps a
100k-row GSMA file or a national registration list well above 200k rows/s (a JSON object per row
cost three times as much). :func:`decode` gives the named, non-empty fields back.

* ``tac`` (GSMA TAC database order; PyHSS fills brand_name and model_name): :data:`TAC_FIELDS`
* ``registration`` (DIRBS registration list): :data:`REGISTRATION_FIELDS`
"""

from __future__ import annotations

__all__ = ["REGISTRATION_FIELDS", "SEP", "TAC_FIELDS", "decode", "encode"]

SEP = "\x1f"
TAC_FIELDS = (
    "marketing_name",
    "internal_model_name",
    "manufacturer",
    "bands",
    "allocation_date",
    "country_code",
    "fixed_code",
    "manufacturer_code",
    "radio_interface",
    "brand_name",
    "model_name",
    "operating_system",
    "nfc",
    "bluetooth",
    "wlan",
    "device_type",
)
REGISTRATION_FIELDS = (
    "make",
    "model",
    "model_number",
    "brand_name",
    "device_type",
    "radio_interface",
    "device_id",
)
_FIELDS = {"tac": TAC_FIELDS, "registration": REGISTRATION_FIELDS}


def encode(table: str, fields: dict[str, str]) -> str:
    """A record from named fields (unknown names are an error: a typo must not vanish)."""
    names = _FIELDS[table]
    unknown = set(fields) - set(names)
    if unknown:
        raise ValueError(f"no field {', '.join(sorted(unknown))} in a {table} record")
    return SEP.join(fields.get(n, "").replace(SEP, " ") for n in names)


def decode(table: str, record: str | None) -> dict[str, str]:
    """The non-empty named fields of a record ({} for None)."""
    if not record:
        return {}
    return {k: v for k, v in zip(_FIELDS[table], record.split(SEP), strict=False) if v}
