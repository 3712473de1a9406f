"""dataverse/odata.py and dataverse/environment.py: record ids, table names, string literals, addresses."""

from __future__ import annotations

import pytest

from dataverse import odata_string, validate_entity_name, validate_guid
from errors import UsageError


def test_odata_string() -> None:
    assert odata_string("O'Brien") == "'O''Brien'"
    assert odata_string("''") == "''''''"
    assert odata_string("plain") == "'plain'"


@pytest.mark.parametrize("name", ["contact", " new_isvip ", "_x1", "a" * 64])
def test_validate_entity_name_good(name: str) -> None:
    assert validate_entity_name(name) == name.strip()


@pytest.mark.parametrize(
    "name", ["", "Contact", "1contact", "contact;drop", "con tact", "a" * 65, "contact\nx", "cöntact"]
)
def test_validate_entity_name_bad(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_entity_name(name)
    assert "\n" not in info.value.message


def test_validate_guid() -> None:
    guid = "2b6a5c3e-0000-4e1a-9c7d-ABCDEF012345"
    assert validate_guid(f" {{{guid}}} ") == guid.lower()
    for bad in ("", "not-a-guid", guid + "0", guid.replace("-", ""), "{" + guid[:-1] + "g}"):
        with pytest.raises(UsageError):
            validate_guid(bad)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("HTTPS://Contoso.CRM.dynamics.com:443", "https://contoso.crm.dynamics.com/"),
        ("https://contoso.crm.dynamics.com/", "https://contoso.crm.dynamics.com/"),
        ("http://127.0.0.1:80/", "http://127.0.0.1/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
    ],
)
def test_environment_addresses_compare_without_case_or_default_port(uri: str, expected: str) -> None:
    from dataverse.environment import normalize_uri

    assert normalize_uri(uri) == expected
