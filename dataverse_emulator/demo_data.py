"""The `demo` dataset: about 2000 contacts, 300 accounts, leads, cases, tasks, quotes and marketing lists,
with designed duplicate patterns (deterministic from the seed; built in well under a second).

Designed patterns. Contact e-mails are on `@dup.example` (find them with `emailaddress1`); in a pair the
first record listed is the older one (createdon 2015-2019), the second the newer (2021-2025).
Patterns (pattern: how to find it):
- exact e-mail pairs (60): `pair01@dup.example` .. `pair60@dup.example`
- groups of 3 (odd k) and 4 (even k) (20): `group01@dup.example` .. `group20@dup.example`
- chains (10), A=B by e-mail, B=C by phone: A and B `chain01@dup.example`, C `chain01.c@dup.example`;
  B and C share telephone1 `+44 20 7946 0001`
- phone-only pairs (10): telephone1 `+1 425 555 0101` .. `0110` (e-mails `phoneonly01a@` / `phoneonly01b@`)
- different parents (10): `parents01@..`, parentcustomerid on two different accounts
- subordinate would lose its parent (5): `loseparent01@..`, the older has no parent, the newer has one
- same parent (5): `sameparent01@..`, both under one account
- active quote on the newer record (5): `activequote01@..`, a quote with statecode 1, customerid = newer
- draft quote on the newer record (5): `draftquote01@..`, quote statecode 0 (does not block a merge)
- marketing list members (8): `listmember01..04@`: the newer in "Newsletter subscribers"; `05..08`: both
- tasks to move (8): `tasks01@..`, 1-3 tasks (regardingobjectid) on each record of the pair
- inactive duplicate (8): `inactive01@..`, the newer has statecode 1 / statuscode 2
- unicode names (4 pairs): `jose.garcia@` (José García / Jose Garcia), `zoe.mueller@` (Zoë Müller),
  `wang.wei@` (王伟), `lukasz.nowak@` (Łukasz Nowak)
- apostrophes (2 pairs): `patrick.o'brien@dup.example` (O'Brien), `maria.d'angelo@dup.example` (D'Angelo)
- address variants (6): `address01..03@`: same postcode, the newer lacks line1/city; `04..06`: other postcode
- boolean flags differ (6): `flags01@..`, donotemail, new_isvip, new_ismember differ between the two
- e-mail differs only by case (4): `case01@dup.example` and `Case01@DUP.example`
Accounts (by name; rule "Accounts with the same name"): "Northwind Traders" x2 (both in list "Trade show
2024"), "Fabrikam, Inc." x3, "O'Reilly Media" x2, "Müller & Söhne GmbH" x2, "Tailspin Toys" x2 (active
quote on the newer), "Litware, Inc." x2 (different parentaccountid), "Wide World Importers" x2 (the newer
inactive), and the hierarchy A <- B <- C: "Adventure Works Cycles" (A, older) is the parent of "Adventure
Works Cycles (Europe)" (B), the parent of "Adventure Works Cycles" (C, newer); A and C are duplicates.
Leads: `leadpair01@dup.example` .. `leadpair10@` (the lead rule is unpublished). Cases: "Child case A" and
"Child case B" under "Parent case: outage"; "Child case C" under "Parent case: billing"; "Duplicate case:
printer jam" x2. Lists: "Newsletter subscribers" (static, contacts), "Trade show 2024" (static, accounts),
"VIP contacts (dynamic)" (dynamic, no members). Filler records use `@mail.example` and never match.
Phone calls, e-mails, appointments, notes and opportunities: demo_related.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import demo_related
from .store import Ref

if TYPE_CHECKING:
    from .datasets import Builder

_FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Henry", "Isla", "Jack", "Karen", "Liam",
          "Mia", "Noah", "Olivia", "Paul", "Rosa", "Sam", "Tara", "Victor", "Wendy", "Yara", "Zach", "Elena"]
_LAST = ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Roberts", "Walker",
         "Wright", "Thompson", "White", "Hughes", "Green", "Hall", "Wood", "Harris", "Martin", "Clarke"]
_CITIES = [("Seattle", "98101"), ("London", "EC1A 1BB"), ("München", "80331"), ("Kraków", "30-001"),
           ("Sevilla", "41001"), ("Dublin", "D02 XY45")]
_DOMAIN = "dup.example"


class _Demo:
    """Builds the demo's records; keeps the phone counter and the lists."""

    def __init__(self, b: Builder) -> None:
        self.b, self.rng = b, b.rng
        self._phone = 0
        self.accounts: list[str] = []
        self.contacts: list[str] = []
        self.newsletter = self.tradeshow = ""

    def phone(self) -> str:
        self._phone += 1
        return f"+1 206 {self._phone:07d}"

    def old(self) -> str:
        return self.b.stamp(2015, 2019)

    def new(self) -> str:
        return self.b.stamp(2021, 2025)

    def contact(self, first: str, last: str, email: str | None, created: str | None = None, **extra: Any) -> str:
        city, postcode = self.rng.choice(_CITIES)
        values = {"firstname": first, "lastname": last, "fullname": f"{first} {last}", "emailaddress1": email,
                  "telephone1": self.phone() if self.rng.random() < 0.8 else None,
                  "address1_city": city, "address1_postalcode": postcode, "address1_line1": "1 Main Street",
                  "donotemail": False, "new_isvip": False, "new_ismember": False}
        values.update(extra)
        return self.b.add("contact", values, created)

    def pair(self, first: str, last: str, email: str, old: dict[str, Any] | None = None,
             new: dict[str, Any] | None = None) -> tuple[str, str]:
        older = self.contact(first, last, email, self.old(), **(old or {}))
        return older, self.contact(first, last, email, self.new(), **(new or {}))

    def account(self, name: str, created: str | None = None, **extra: Any) -> str:
        return self.b.add("account", {"name": name, "telephone1": self.phone(), **extra}, created)

    def member(self, list_id: str, entity: str, record_id: str) -> None:
        self.b.add("listmember", {"listid": Ref("list", list_id), "entityid": Ref(entity, record_id)})

    def task(self, entity: str, record_id: str, subject: str) -> None:
        self.b.add("task", {"subject": subject, "regardingobjectid": Ref(entity, record_id)})

    def quote(self, entity: str, record_id: str, name: str, state: tuple[int, int]) -> None:
        self.b.add("quote", {"name": name, "customerid": Ref(entity, record_id), "totalamount": 1250.0,
                             "statecode": state[0], "statuscode": state[1]})

    def name(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST), self.rng.choice(_LAST)


def build(b: Builder) -> None:
    d = _Demo(b)
    _filler_accounts(d, 270)
    _lists(d)
    _account_patterns(d)
    _filler_contacts(d, 1640)
    _email_patterns(d)
    _parent_and_quote_patterns(d)
    _list_task_inactive_patterns(d)
    _name_address_flag_patterns(d)
    _leads_and_cases(d)
    _filler_activities(d)
    _count_members(d)
    demo_related.build(b, d.contacts, d.accounts)  # last: the rows above keep their ids


def _filler_accounts(d: _Demo, count: int) -> None:
    companies = ["Contoso", "Proseware", "Wingtip", "Coho Winery", "Lucerne", "Alpine Ski", "Blue Yonder",
                 "Humongous", "Trey Research", "Woodgrove", "A. Datum", "Relecloud"]
    for i in range(count):
        city, postcode = d.rng.choice(_CITIES)
        d.accounts.append(d.account(f"{companies[i % len(companies)]} {city} {i:03d}",
                                    address1_city=city, address1_postalcode=postcode))


def _lists(d: _Demo) -> None:
    d.newsletter = d.b.add("list", {"listname": "Newsletter subscribers", "type": False, "createdfromcode": 2})
    d.tradeshow = d.b.add("list", {"listname": "Trade show 2024", "type": False, "createdfromcode": 1})
    d.b.add("list", {"listname": "VIP contacts (dynamic)", "type": True, "createdfromcode": 2})


def _account_patterns(d: _Demo) -> None:
    for name, copies in (("Fabrikam, Inc.", 3), ("O'Reilly Media", 2), ("Müller & Söhne GmbH", 2)):
        for _ in range(copies):
            d.account(name)
    for _ in range(2):
        d.member(d.tradeshow, "account", d.account("Northwind Traders"))
    d.account("Tailspin Toys", d.old())
    d.quote("account", d.account("Tailspin Toys", d.new()), "Tailspin Toys bikes", (1, 3))
    d.account("Litware, Inc.", d.old(), parentaccountid=Ref("account", d.accounts[0]))
    d.account("Litware, Inc.", d.new(), parentaccountid=Ref("account", d.accounts[1]))
    d.account("Wide World Importers", d.old())
    d.account("Wide World Importers", d.new(), statecode=1, statuscode=2)
    a = d.account("Adventure Works Cycles", "2015-03-01T09:00:00Z")
    b = d.account("Adventure Works Cycles (Europe)", "2017-03-01T09:00:00Z", parentaccountid=Ref("account", a))
    d.account("Adventure Works Cycles", "2023-03-01T09:00:00Z", parentaccountid=Ref("account", b))


def _filler_contacts(d: _Demo, count: int) -> None:
    for i in range(count):
        first, last = d.name()
        email = f"{first}.{last}.{i}@mail.example".lower() if d.rng.random() < 0.95 else None
        parent = Ref("account", d.rng.choice(d.accounts)) if d.rng.random() < 0.25 else None
        inactive = d.rng.random() < 0.03
        d.contacts.append(d.contact(
            first, last, email, parentcustomerid=parent, statecode=1 if inactive else 0,
            statuscode=2 if inactive else 1, donotemail=d.rng.random() < 0.1, new_isvip=d.rng.random() < 0.05,
        ))


def _email_patterns(d: _Demo) -> None:
    for k in range(1, 61):
        first, last = d.name()
        d.pair(first, last, f"pair{k:02d}@{_DOMAIN}")
    for k in range(1, 21):
        first, last = d.name()
        for _ in range(3 if k % 2 else 4):
            d.contact(first, last, f"group{k:02d}@{_DOMAIN}")
    for k in range(1, 11):
        first, last = d.name()
        shared = f"+44 20 7946 {k:04d}"
        d.contact(first, last, f"chain{k:02d}@{_DOMAIN}", d.old())
        d.contact(first, last, f"chain{k:02d}@{_DOMAIN}", d.new(), telephone1=shared)
        d.contact(first, last, f"chain{k:02d}.c@{_DOMAIN}", d.new(), telephone1=shared)
    for k in range(1, 11):
        first, last = d.name()
        phone = f"+1 425 555 {100 + k:04d}"
        d.contact(first, last, f"phoneonly{k:02d}a@{_DOMAIN}", d.old(), telephone1=phone)
        d.contact(first, last, f"phoneonly{k:02d}b@{_DOMAIN}", d.new(), telephone1=phone)
    for k in range(1, 5):
        first, last = d.name()
        d.contact(first, last, f"case{k:02d}@{_DOMAIN}", d.old())
        d.contact(first, last, f"Case{k:02d}@DUP.example", d.new())


def _parent_and_quote_patterns(d: _Demo) -> None:
    for k in range(1, 11):
        first, last = d.name()
        d.pair(first, last, f"parents{k:02d}@{_DOMAIN}",
               {"parentcustomerid": Ref("account", d.accounts[10 + k])},
               {"parentcustomerid": Ref("account", d.accounts[100 + k])})
    for k in range(1, 6):
        first, last = d.name()
        d.pair(first, last, f"loseparent{k:02d}@{_DOMAIN}", {"parentcustomerid": None},
               {"parentcustomerid": Ref("account", d.accounts[30 + k])})
        same = {"parentcustomerid": Ref("account", d.accounts[50 + k])}
        d.pair(*d.name(), f"sameparent{k:02d}@{_DOMAIN}", same, same)
    for k in range(1, 6):
        _, newer = d.pair(*d.name(), f"activequote{k:02d}@{_DOMAIN}")
        d.quote("contact", newer, f"Active quote {k}", (1, 3))
        _, newer = d.pair(*d.name(), f"draftquote{k:02d}@{_DOMAIN}")
        d.quote("contact", newer, f"Draft quote {k}", (0, 1))


def _list_task_inactive_patterns(d: _Demo) -> None:
    for k in range(1, 9):
        older, newer = d.pair(*d.name(), f"listmember{k:02d}@{_DOMAIN}")
        d.member(d.newsletter, "contact", newer)
        if k > 4:
            d.member(d.newsletter, "contact", older)
    for k in range(1, 9):
        pair = d.pair(*d.name(), f"tasks{k:02d}@{_DOMAIN}")
        for record in pair:
            for n in range(d.rng.randint(1, 3)):
                d.task("contact", record, f"Follow up {k}.{n + 1}")
    for k in range(1, 9):
        d.pair(*d.name(), f"inactive{k:02d}@{_DOMAIN}", new={"statecode": 1, "statuscode": 2})


def _name_address_flag_patterns(d: _Demo) -> None:
    d.contact("José", "García", f"jose.garcia@{_DOMAIN}", d.old())
    d.contact("Jose", "Garcia", f"jose.garcia@{_DOMAIN}", d.new())
    d.pair("Zoë", "Müller", f"zoe.mueller@{_DOMAIN}")
    d.pair("伟", "王", f"wang.wei@{_DOMAIN}", {"fullname": "王伟"}, {"fullname": "王伟"})
    d.pair("Łukasz", "Nowak", f"lukasz.nowak@{_DOMAIN}")
    d.pair("Patrick", "O'Brien", f"patrick.o'brien@{_DOMAIN}")
    d.pair("Maria", "D'Angelo", f"maria.d'angelo@{_DOMAIN}")
    for k in range(1, 7):
        base = {"address1_line1": "12 Harbour Road", "address1_city": "Dublin", "address1_postalcode": "D02 XY45"}
        if k <= 3:
            d.pair(*d.name(), f"address{k:02d}@{_DOMAIN}", base,
                   {"address1_line1": None, "address1_city": None, "address1_postalcode": "D02 XY45"})
        else:
            d.pair(*d.name(), f"address{k:02d}@{_DOMAIN}", base, {**base, "address1_postalcode": "D04 AB12"})
    for k in range(1, 7):
        d.pair(*d.name(), f"flags{k:02d}@{_DOMAIN}",
               {"donotemail": True, "new_isvip": False, "new_ismember": True},
               {"donotemail": False, "new_isvip": True, "new_ismember": False})


def _leads_and_cases(d: _Demo) -> None:
    for i in range(60):
        first, last = d.name()
        d.b.add("lead", {"subject": f"Interested in bikes {i}", "firstname": first, "lastname": last,
                         "fullname": f"{first} {last}", "emailaddress1": f"lead{i}@mail.example"})
    for k in range(1, 11):
        first, last = d.name()
        for _ in range(2):
            d.b.add("lead", {"subject": "Website enquiry", "firstname": first, "lastname": last,
                             "fullname": f"{first} {last}", "emailaddress1": f"leadpair{k:02d}@{_DOMAIN}"})
    customer = Ref("contact", d.contacts[0])
    parents = {t: d.b.add("incident", {"title": t, "customerid": customer})
               for t in ("Parent case: outage", "Parent case: billing")}
    for title, parent in (("Child case A", "Parent case: outage"), ("Child case B", "Parent case: outage"),
                          ("Child case C", "Parent case: billing")):
        d.b.add("incident", {"title": title, "customerid": customer, "parentcaseid": Ref("incident", parents[parent])})
    for _ in range(2):
        d.b.add("incident", {"title": "Duplicate case: printer jam", "customerid": customer})
    for i in range(10):
        d.b.add("incident", {"title": f"Question {i}", "customerid": Ref("contact", d.rng.choice(d.contacts))})


def _filler_activities(d: _Demo) -> None:
    for i in range(200):
        d.task("contact", d.rng.choice(d.contacts), f"Call back {i}")
    states = [(0, 1), (1, 3), (2, 4), (3, 5)]
    for i in range(30):
        d.quote("contact", d.rng.choice(d.contacts), f"Quote {i}", d.rng.choice(states))
    for contact in d.rng.sample(d.contacts, 40):
        d.member(d.newsletter, "contact", contact)
    for account in d.rng.sample(d.accounts, 15):
        d.member(d.tradeshow, "account", account)


def _count_members(d: _Demo) -> None:
    counts: dict[str, int] = {}
    for row in d.b.store.rows("listmember"):
        counts[row["listid"].id] = counts.get(row["listid"].id, 0) + 1
    for row in d.b.store.rows("list"):
        d.b.store.update("list", row["listid"], {"membercount": counts.get(row["listid"], 0)}, touch=False)
