"""The demo's related rows beyond tasks: phone calls, e-mails, appointments (activities with
`regardingobjectid`), notes (`annotation`, `objectid`) and opportunities (`customerid`, `parentcontactid`,
`parentaccountid`), so a merge's cascade, its preview and its undo have more than tasks to move.

Added after every other demo row (demo_data.build calls this last), so the ids and values of the earlier
rows do not change. Designed: each record of the `tasks01..08@dup.example` pairs has one phone call, one
e-mail, one appointment and one note; the newer record of each pair is the customer and contact of an open
opportunity; both "Northwind Traders" accounts have a note and an opportunity. Filler rows go on random
contacts and accounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import Ref

if TYPE_CHECKING:
    from .datasets import Builder

_DOMAIN = "dup.example"


def _activity(b: Builder, table: str, entity: str, record_id: str, subject: str, state: tuple[int, int],
              **extra: object) -> None:
    b.add(table, {"subject": subject, "regardingobjectid": Ref(entity, record_id), "statecode": state[0],
                  "statuscode": state[1], **extra})


def _note(b: Builder, entity: str, record_id: str, subject: str) -> None:
    b.add("annotation", {"subject": subject, "notetext": f"{subject}: written during the demo's setup.",
                         "objectid": Ref(entity, record_id), "objecttypecode": entity, "isdocument": False})


def _opportunity(b: Builder, entity: str, record_id: str, name: str, value: float) -> None:
    parent = {"parentcontactid": Ref("contact", record_id)} if entity == "contact" else {
        "parentaccountid": Ref("account", record_id)}
    b.add("opportunity", {"name": name, "customerid": Ref(entity, record_id), "estimatedvalue": value,
                          "statecode": 0, "statuscode": 1, **parent})


def _related_to(b: Builder, entity: str, record_id: str, label: str) -> None:
    _activity(b, "phonecall", entity, record_id, f"Call about {label}", (1, 2), phonenumber="+1 206 555 0100",
              directioncode=True)
    _activity(b, "email", entity, record_id, f"Re: {label}", (1, 3), directioncode=True)
    _activity(b, "appointment", entity, record_id, f"Meeting: {label}", (0, 1), location="Seattle")
    _note(b, entity, record_id, f"Note on {label}")


def build(b: Builder, contacts: list[str], accounts: list[str]) -> None:
    store = b.store
    for k in range(1, 9):
        email = f"tasks{k:02d}@{_DOMAIN}"
        pair = sorted((r for r in store.rows("contact") if r.get("emailaddress1") == email),
                      key=lambda r: r["createdon"])
        for record in pair:
            _related_to(b, "contact", record["contactid"], f"tasks pair {k}")
        if pair:
            _opportunity(b, "contact", pair[-1]["contactid"], f"Bikes for pair {k}", 1000.0 * k)
    for account in [r for r in store.rows("account") if r.get("name") == "Northwind Traders"]:
        _note(b, "account", account["accountid"], "Northwind Traders visit")
        _opportunity(b, "account", account["accountid"], "Northwind Traders renewal", 25000.0)
    rng = b.rng
    states = {"phonecall": [(0, 1), (1, 2), (1, 4), (2, 3)], "email": [(0, 1), (1, 3), (1, 4)],
              "appointment": [(0, 1), (1, 3), (3, 5)]}
    for table, count in (("phonecall", 60), ("email", 60), ("appointment", 40)):
        for i in range(count):
            _activity(b, table, "contact", rng.choice(contacts), f"{table} {i}", rng.choice(states[table]))
    for i in range(80):
        entity, pool = ("contact", contacts) if i % 4 else ("account", accounts)
        _note(b, entity, rng.choice(pool), f"Filler note {i}")
    for i in range(30):
        entity, pool = ("contact", contacts) if i % 3 else ("account", accounts)
        _opportunity(b, entity, rng.choice(pool), f"Opportunity {i}", float(rng.randint(1, 90) * 1000))
