"""Datasets the emulator starts with: `empty`, `demo`, `synthetic:N`, `synthetic-partitions:N`, or a JSON file
(Store.load_json format).

Every built dataset has the same base: the caller, systemuser "Demo Admin" (`DEMO_ADMIN_ID`); system views
(savedquery) "Active Contacts for Duplicate Checking", "Active Accounts for Duplicate Checking", "Active
Leads for Duplicate Checking" (statecode eq 0, all attributes), "Active Contacts", "All Contacts",
"Contacts named O'Brien" (a value with an apostrophe); personal views (userquery) "My Contacts (O'Brien's
view)" (ownerid eq-userid) and "Kontakte für Dubletten — José" (nested or-filter with a unicode value);
published duplicate rules (exclude inactive records, one exact condition each) "Contacts with the same
e-mail" (emailaddress1), "Contacts with the same business phone" (telephone1), "Accounts with the same
name" (name); and the unpublished "Leads with the same e-mail". A JSON file is loaded as it is (only the
caller is added when missing).

`demo` (demo_data.py lists its designed duplicate patterns) is a few thousand records, deterministic from
the seed. `synthetic:N` is N contacts and N/20 accounts built for speed (100k in about a second):
- 20% of contacts (the last group may run over by up to 3) sit in groups of 2-4 sharing an e-mail
  `dup{g}@dup.synthetic.example` (g from 0);
- 2% form chains of three: A and B share `chain{c}@dup.synthetic.example`, B and C share a telephone1
  `+1 425 {c:07d}`, C has `chain{c}.c@dup.synthetic.example`;
- every other contact has a unique e-mail (`...@mail.synthetic.example`) and phone; 5% have no e-mail.
Dates are ISO `YYYY-MM-DDTHH:MM:SSZ` between 2015 and 2025.

`synthetic-partitions:N` (partitions_data.py) has at least N contacts with duplicates, more than one detection
job may report when N >= 5000, in groups `dataset_groups(name, seed)` lists (pairs, triples, chains).
"""

from __future__ import annotations

import calendar
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from . import demo_data, partitions_data
from .partitions_data import KnownGroup
from .store import Ref, Store

DEMO_ADMIN_ID = "4dd0e4a5-0000-4000-8000-00000000a001"
DEMO_ADMIN_NAME = "Demo Admin"
BASE_STAMP = "2015-01-01T00:00:00Z"
_START = calendar.timegm((2015, 1, 1, 0, 0, 0))

FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Henry", "Isla", "Jack", "Karen", "Liam",
         "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor", "Wendy", "Xavier",
         "Yara", "Zach", "Alice", "Bruno", "Chloe", "Daniel", "Elena", "Frank"]
LAST = ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts", "Walker",
        "Wright", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall", "Wood", "Harris", "Martin",
        "Jackson", "Clarke", "Lewis", "Young", "King", "Baker", "Moore", "Allen", "Scott", "Hill"]
COMPANY = ["Contoso", "Litware", "Proseware", "Wingtip", "Coho", "Lucerne", "Alpine", "Blue Yonder", "Humongous",
           "Margie's Travel", "Trey Research", "Woodgrove", "Datum", "Relecloud", "Graphic Design Institute"]

_ACTIVE_FETCH = ('<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="false">'
                 '<entity name="{e}"><all-attributes /><filter type="and">'
                 '<condition attribute="statecode" operator="eq" value="0" /></filter></entity></fetch>')
_LIST_FETCH = ('<fetch version="1.0" mapping="logical"><entity name="contact"><attribute name="fullname" />'
               '<attribute name="emailaddress1" /><attribute name="telephone1" /><attribute name="contactid" />'
               '<order attribute="fullname" descending="false" />{f}</entity></fetch>')
_STATE0 = '<filter type="and"><condition attribute="statecode" operator="eq" value="0" /></filter>'
SAVED_QUERIES = [
    ("Active Contacts for Duplicate Checking", "contact", _ACTIVE_FETCH.format(e="contact")),
    ("Active Accounts for Duplicate Checking", "account", _ACTIVE_FETCH.format(e="account")),
    ("Active Leads for Duplicate Checking", "lead", _ACTIVE_FETCH.format(e="lead")),
    ("Active Contacts", "contact", _LIST_FETCH.format(f=_STATE0)),
    ("All Contacts", "contact", _LIST_FETCH.format(f="")),
    ("Contacts named O'Brien", "contact", _LIST_FETCH.format(
        f='<filter type="and"><condition attribute="lastname" operator="eq" value="O\'Brien" /></filter>')),
]
USER_QUERIES = [
    ("My Contacts (O'Brien's view)", "contact", _LIST_FETCH.format(
        f='<filter type="and"><condition attribute="ownerid" operator="eq-userid" />'
          '<condition attribute="statecode" operator="eq" value="0" /></filter>')),
    ("Kontakte für Dubletten — José", "contact", _LIST_FETCH.format(
        f='<filter type="and"><condition attribute="statecode" operator="eq" value="0" /><filter type="or">'
          '<condition attribute="address1_country" operator="null" />'
          '<condition attribute="address1_country" operator="ne" value="Österreich" /></filter></filter>')),
]
# (name, base entity, attribute, published)
RULES = [
    ("Contacts with the same e-mail", "contact", "emailaddress1", True),
    ("Contacts with the same business phone", "contact", "telephone1", True),
    ("Accounts with the same name", "account", "name", True),
    ("Leads with the same e-mail", "lead", "emailaddress1", False),
]


class Builder:
    """Adds records with deterministic ids and dates drawn from one seeded generator."""

    def __init__(self, store: Store, seed: int) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.owner = Ref("systemuser", DEMO_ADMIN_ID)

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def stamp(self, first_year: int = 2015, last_year: int = 2025) -> str:
        lo = calendar.timegm((first_year, 1, 1, 0, 0, 0))
        hi = calendar.timegm((last_year + 1, 1, 1, 0, 0, 0)) - 1
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.rng.randint(lo, hi)))

    def add(self, entity: str, values: dict[str, Any], created: str | None = None) -> str:
        meta = self.store.schema[entity]
        stamp = created or values.get("createdon") or self.stamp()
        record = {meta.primary_id: self.uid(), "createdon": stamp, "modifiedon": stamp}
        if "ownerid" in meta.attrs:
            record["ownerid"] = self.owner
        record.update(values)
        return self.store.insert(entity, record)


def load_dataset(store: Store, name: str, seed: int) -> None:
    """Fill the store with the named dataset."""
    with store.lock:
        if name == "empty":
            add_base(Builder(store, seed))
        elif name == "demo":
            builder = Builder(store, seed)
            add_base(builder)
            demo_data.build(builder)
        elif name.startswith(partitions_data.PREFIX):
            builder = Builder(store, seed)
            add_base(builder)
            partitions_data.build(store, builder.owner, partitions_data.parse_count(name), seed)
        elif name.startswith("synthetic:"):
            count = int(name.partition(":")[2])
            builder = Builder(store, seed)
            add_base(builder)
            build_synthetic(builder, count)
        elif name.endswith(".json") or Path(name).is_file():
            store.load_json(json.loads(Path(name).read_text(encoding="utf-8")))
            if store.get("systemuser", DEMO_ADMIN_ID) is None:
                _add_admin(store)
        else:
            raise ValueError(f"unknown dataset {name!r}: use empty, demo, synthetic:N, synthetic-partitions:N or a "
                             "JSON file")


def dataset_groups(name: str, seed: int = 1) -> list[KnownGroup]:
    """The designed duplicate groups of a generated dataset (today `synthetic-partitions:N`), each with its kind
    and contact ids, for tests to compare with what detection and grouping find. ValueError for other names."""
    return partitions_data.known_groups(name, seed)


def admin_id(store: Store) -> str:
    """The caller's systemuserid (the "Demo Admin" user)."""
    return DEMO_ADMIN_ID


def _add_admin(store: Store) -> None:
    store.insert("systemuser", {
        "systemuserid": DEMO_ADMIN_ID, "fullname": DEMO_ADMIN_NAME, "domainname": "admin@demo.example",
        "internalemailaddress": "admin@demo.example", "isdisabled": False,
        "createdon": BASE_STAMP, "modifiedon": BASE_STAMP,
    })


def add_base(b: Builder) -> None:
    """The caller, the views and the duplicate rules every dataset has."""
    _add_admin(b.store)
    layout = '<grid name="resultset" object="2" jump="fullname" select="1" icon="1" preview="1">' \
             '<row name="result" id="contactid"><cell name="fullname" width="300" /></row></grid>'
    for name, entity, fetch in SAVED_QUERIES:
        b.add("savedquery", {"name": name, "returnedtypecode": entity, "fetchxml": fetch, "layoutxml": layout,
                             "querytype": 0, "isdefault": name.startswith("Active Contacts")}, BASE_STAMP)
    for name, entity, fetch in USER_QUERIES:
        b.add("userquery", {"name": name, "returnedtypecode": entity, "fetchxml": fetch, "layoutxml": layout,
                            "querytype": 0}, BASE_STAMP)
    for name, entity, attr, published in RULES:
        add_rule(b, name, entity, [(attr, 0, None)], published=published)


def add_rule(b: Builder, name: str, entity: str, conditions: list[tuple[str, int, int | None]],
             published: bool = True, matching: str | None = None, case_sensitive: bool = False,
             exclude_inactive: bool = True, ignore_blank: bool = True) -> str:
    """A duplicaterule with its conditions (attribute, operatorcode, operatorparam)."""
    state = (1, 2) if published else (0, 0)
    rule_id = b.add("duplicaterule", {
        "name": name, "baseentityname": entity, "matchingentityname": matching or entity,
        "iscasesensitive": case_sensitive, "excludeinactiverecords": exclude_inactive,
        "statecode": state[0], "statuscode": state[1],
    }, BASE_STAMP)
    for attr, op, param in conditions:
        b.add("duplicaterulecondition", {
            "baseattributename": attr, "matchingattributename": attr, "operatorcode": op, "operatorparam": param,
            "ignoreblankvalues": ignore_blank, "regardingobjectid": Ref("duplicaterule", rule_id),
        }, BASE_STAMP)
    return rule_id


def _stamps(rng: random.Random, count: int) -> list[str]:
    span = calendar.timegm((2026, 1, 1, 0, 0, 0)) - _START
    fmt, gm = time.strftime, time.gmtime
    return [fmt("%Y-%m-%dT%H:%M:%SZ", gm(_START + int(rng.random() * span))) for _ in range(count)]


def _emails_and_phones(rng: random.Random, count: int) -> tuple[list[str | None], list[str | None]]:
    """The synthetic duplicate structure: grouped e-mails, phone chains, unique rest (see module docstring)."""
    emails: list[str | None] = [None] * count
    phones: list[str | None] = [f"+1 555 {i:07d}" for i in range(count)]
    pos, group = 0, 0
    grouped = int(count * 0.2)
    while pos < grouped:
        size = min(rng.choice((2, 2, 2, 3, 4)), count - pos)
        for j in range(size):
            emails[pos + j] = f"dup{group}@dup.synthetic.example"
        pos, group = pos + size, group + 1
    for chain in range(int(count * 0.02) // 3):
        if pos + 3 > count:
            break
        emails[pos] = emails[pos + 1] = f"chain{chain}@dup.synthetic.example"
        emails[pos + 2] = f"chain{chain}.c@dup.synthetic.example"
        phones[pos + 1] = phones[pos + 2] = f"+1 425 {chain:07d}"
        pos += 3
    for i in range(pos, count):
        if rng.random() >= 0.05:
            emails[i] = f"person{i}@mail.synthetic.example"
    return emails, phones


def build_synthetic(b: Builder, count: int) -> None:
    rng, store = b.rng, b.store
    accounts = []
    for i, stamp in enumerate(_stamps(rng, max(1, count // 20))):
        accounts.append(b.add("account", {"name": f"{COMPANY[i % len(COMPANY)]} {i}"}, stamp))
    emails, phones = _emails_and_phones(rng, count)
    firsts = rng.choices(FIRST, k=count)
    lasts = rng.choices(LAST, k=count)
    stamps = _stamps(rng, count)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    parents = [Ref("account", accounts[int(x / 0.3 * len(accounts)) % len(accounts)]) if x < 0.3 else None
               for x in (rng.random() for _ in range(count))]
    owner = b.owner
    for i in range(count):
        store.insert("contact", {
            "contactid": ids[i], "createdon": stamps[i], "modifiedon": stamps[i], "ownerid": owner,
            "firstname": firsts[i], "lastname": lasts[i], "fullname": f"{firsts[i]} {lasts[i]}",
            "emailaddress1": emails[i], "telephone1": phones[i], "parentcustomerid": parents[i],
        })
