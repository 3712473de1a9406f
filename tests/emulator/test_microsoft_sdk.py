"""Microsoft's own Python SDK (`powerplatform-dataverse-client`, unchanged) against the emulator over https.

A client written elsewhere does not share our blind spots (DESIGN.md habit 10). The certificate is made here,
for 127.0.0.1, with `cryptography`; requests trusts it through REQUESTS_CA_BUNDLE. Where the emulator cannot
answer (the SDK's SQL endpoint, UpsertMultiple, BulkDelete), the SDK must get a 400, never a wrong result.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PowerPlatform.Dataverse.client import DataverseClient
from PowerPlatform.Dataverse.core.errors import HttpError
from PowerPlatform.Dataverse.models.filters import col
from PowerPlatform.Dataverse.models.upsert import UpsertItem

from dataverse_emulator import EmulatorHandle, start_emulator

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dataverse-emulator test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class StaticCredential:
    """An azure-core TokenCredential that hands out one token (the emulator accepts any bearer token)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("sdk-test-token", int(time.time()) + 3600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorHandle, Path]]:
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    handle = start_emulator("demo", tls_cert=cert, tls_key=key)
    assert handle.url.startswith("https://127.0.0.1:")
    yield handle, cert
    handle.stop()


@pytest.fixture
def client(server: tuple[EmulatorHandle, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[DataverseClient]:
    handle, cert = server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # after conftest cleared it: TLS verification stays on
    with DataverseClient(handle.url, StaticCredential()) as dv:
        yield dv


def test_create_get_update_delete(client: DataverseClient, server: tuple[EmulatorHandle, Path]) -> None:
    rid = client.records.create("contact", {"firstname": "Sdk", "lastname": "Person", "gendercode": "Female"})
    record = client.records.retrieve("contact", rid, select=["fullname", "gendercode"])
    assert record is not None and record["fullname"] == "Sdk Person"
    assert record["gendercode"] == 2  # the SDK turned the label into the option value from our metadata
    client.records.update("contact", rid, {"jobtitle": "Tester", "preferredcontactmethodcode": "Email"})
    again = client.records.retrieve("contact", rid, select=["jobtitle", "preferredcontactmethodcode"])
    assert (again["jobtitle"], again["preferredcontactmethodcode"]) == ("Tester", 2)
    client.records.update("contact", rid, {"statecode": 1, "statuscode": 2})  # deactivate through Update
    assert server[0].store.get("contact", rid)["statecode"] == 1
    with pytest.raises(HttpError) as info:
        client.records.update("contact", rid, {"statecode": 0, "statuscode": 2})
    assert info.value.status_code == 400 and "0x80048408" in str(info.value.details or "") + str(
        getattr(info.value, "service_error_code", ""))
    client.records.delete("contact", rid)
    assert client.records.retrieve("contact", rid) is None


def test_list_with_filter_select_orderby_top_and_paging(client: DataverseClient) -> None:
    ids = client.records.create("contact", [{"firstname": f"P{i}", "lastname": "Paged", "jobtitle": "x"}
                                            for i in range(7)])
    assert len(ids) == 7
    result = client.records.list("contact", filter="lastname eq 'Paged'", select=["firstname"],
                                 orderby=["firstname desc"], page_size=3)
    assert [r["firstname"] for r in result] == [f"P{i}" for i in range(6, -1, -1)]
    pages = list(client.records.list_pages("contact", filter="lastname eq 'Paged'", select=["firstname"],
                                           page_size=3))
    assert [len(p) for p in pages] == [3, 3, 1]
    top = client.records.list("contact", filter="lastname eq 'Paged'", select=["firstname"],
                              orderby=["firstname"], top=2, page_size=5)
    assert [r["firstname"] for r in top] == ["P0", "P1"]  # $top wins over maxpagesize
    built = (client.query.builder("contact").select("firstname").where(col("lastname") == "Paged")
             .where(col("firstname") != "P0").order_by("firstname").top(2).execute())
    assert [r["firstname"] for r in built] == ["P1", "P2"]
    client.records.update("contact", ids, {"jobtitle": "Bulk updated"})  # UpdateMultiple
    updated = client.records.list("contact", filter="lastname eq 'Paged'", select=["jobtitle"])
    assert {r["jobtitle"] for r in updated} == {"Bulk updated"}
    client.records.update("contact", ids[:2], [{"jobtitle": "A"}, {"jobtitle": "B"}])
    assert [client.records.retrieve("contact", i, select=["jobtitle"])["jobtitle"] for i in ids[:2]] == ["A", "B"]


def test_expand_through_the_sdk(client: DataverseClient) -> None:
    account = client.records.create("account", {"name": "Sdk Parent"})
    contact = client.records.create("contact", {"lastname": "Child", "parentcustomerid_account@odata.bind":
                                                f"/accounts({account})"})
    record = client.records.retrieve("contact", contact, select=["lastname"],
                                     expand=["parentcustomerid_account($select=name)"])
    assert record["parentcustomerid_account"]["name"] == "Sdk Parent"


def test_table_info_and_metadata_helpers(client: DataverseClient) -> None:
    info = client.tables.get("contact")
    assert info is not None
    assert (info["entity_set_name"], info["primary_id_attribute"], info["table_logical_name"]) == (
        "contacts", "contactid", "contact")
    names = {t["LogicalName"] for t in client.tables.list(select=["LogicalName"])}
    assert {"contact", "account", "phonecall", "annotation"} <= names
    columns = client.tables.list_columns("contact", select=["LogicalName", "AttributeType"])
    assert {"LogicalName": "emailaddress1", "AttributeType": "String"} in [
        {k: v for k, v in c.items() if k in ("LogicalName", "AttributeType")} for c in columns]
    column = client.tables.get_column("contact", "emailaddress1")
    assert column["MaxLength"] == 100
    assert client.tables.get_column("contact", "nosuch") is None
    rels = client.tables.list_table_relationships("contact")
    assert "Contact_Tasks" in {r["SchemaName"] for r in rels}
    assert client.tables.get_relationship("Contact_Tasks") is not None
    one_to_many = client.tables.list_relationships(
        filter="RelationshipType eq Microsoft.Dynamics.CRM.RelationshipType'OneToManyRelationship'",
        select=["SchemaName"])
    assert "contact_customer_accounts" in {r["SchemaName"] for r in one_to_many}


def test_alternate_keys_and_upsert(client: DataverseClient) -> None:
    client.tables.create_alternate_key("account", "new_sdk_accountnumber", ["accountnumber"])
    keys = client.tables.get_alternate_keys("account")
    assert [k.schema_name for k in keys] == ["new_sdk_accountnumber"]
    client.records.upsert("account", [UpsertItem(alternate_key={"accountnumber": "SDK-1"},
                                                 record={"name": "Upserted by the SDK"})])
    found = client.records.list("account", filter="accountnumber eq 'SDK-1'", select=["name"])
    assert [r["name"] for r in found] == ["Upserted by the SDK"]
    with pytest.raises(HttpError) as info:  # UpsertMultiple: not served, so a 400, not a silent success
        client.records.upsert("account", [UpsertItem(alternate_key={"accountnumber": f"SDK-{i}"},
                                                     record={"name": "x"}) for i in (2, 3)])
    assert info.value.status_code == 400


def test_dataframe_helpers(client: DataverseClient) -> None:
    frame = pd.DataFrame([{"firstname": "Df1", "lastname": "Frame"}, {"firstname": "Df2", "lastname": "Frame"}])
    frame["contactid"] = client.dataframe.create("contact", frame)
    assert frame["contactid"].notna().all()
    changes = pd.DataFrame({"contactid": frame["contactid"], "jobtitle": ["one", "two"]})
    client.dataframe.update("contact", changes, id_column="contactid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        read = client.dataframe.get("contact", filter="lastname eq 'Frame'", select=["firstname", "jobtitle"],
                                    orderby=["firstname"])
    assert list(read["jobtitle"]) == ["one", "two"]
    client.dataframe.delete("contact", frame["contactid"], use_bulk_delete=False)
    assert client.records.list("contact", filter="lastname eq 'Frame'").to_dataframe().empty
    with pytest.raises(HttpError) as info:  # BulkDelete is not served: the SDK sees the 400
        client.dataframe.delete("contact", pd.Series(["00000000-0000-0000-0000-000000000001",
                                                      "00000000-0000-0000-0000-000000000002"]))
    assert info.value.status_code == 400


def test_fetchxml_pages_through_the_paging_cookie(client: DataverseClient) -> None:
    client.records.create("contact", [{"firstname": f"F{i}", "lastname": "Fetched"} for i in range(5)])
    xml = ("<fetch count='2'><entity name='contact'><attribute name='firstname'/><order attribute='firstname'/>"
           "<filter><condition attribute='lastname' operator='eq' value='Fetched'/></filter></entity></fetch>")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to simple paging: the cookie must be there and parse
        pages = list(client.query.fetchxml(xml).execute_pages())
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [r["firstname"] for p in pages for r in p] == [f"F{i}" for i in range(5)]
    assert len(client.query.fetchxml(xml).execute().to_dataframe()) == 5


def test_sql_is_a_400_not_a_wrong_result(client: DataverseClient) -> None:
    with pytest.raises(HttpError) as info:
        client.query.sql("SELECT fullname FROM contact WHERE lastname = 'Fetched'")
    assert info.value.status_code == 400
    assert "sql" in str(info.value)
