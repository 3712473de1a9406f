"""The tables the emulator serves: entity and attribute metadata, lookups, and merge cascades.

Pure data. `SCHEMA` maps a logical name to an `Entity`; everything else (store, OData, metadata documents,
Merge, detection) reads it from here so that one table definition drives them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Attribute types as Dataverse names them (AttributeMetadata.AttributeType).
STRING, MEMO, INTEGER, BIGINT, BOOLEAN, DATETIME = "String", "Memo", "Integer", "BigInt", "Boolean", "DateTime"
DECIMAL, MONEY, PICKLIST, STATE, STATUS = "Decimal", "Money", "Picklist", "State", "Status"
LOOKUP, CUSTOMER, OWNER, UNIQUEID, ENTITYNAME = "Lookup", "Customer", "Owner", "Uniqueidentifier", "EntityName"
LOOKUP_TYPES = frozenset({LOOKUP, CUSTOMER, OWNER})

# Entities the Merge message accepts (DESIGN.md section 3).
MERGEABLE = frozenset({"account", "contact", "lead", "incident"})


@dataclass(frozen=True)
class Attr:
    """One column. Lookups hold a `(entity, id)` tuple in the store and read as `_name_value` over the API."""

    name: str
    type: str
    updatable: bool = True
    readable: bool = True
    creatable: bool = True
    targets: tuple[str, ...] = ()
    attribute_of: str | None = None

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    def nav_name(self, target: str) -> str:
        """Navigation property used to write this lookup (`x@odata.bind`): suffixed when polymorphic."""
        return self.name if len(self.targets) <= 1 else f"{self.name}_{target}"


@dataclass(frozen=True)
class Entity:
    name: str
    set_name: str
    primary_id: str
    primary_name: str
    object_type_code: int
    attrs: dict[str, Attr] = field(default_factory=dict)
    # statecode/statuscode a merged (deactivated) subordinate receives; None when not mergeable
    merged_state: tuple[int, int] | None = None
    # states that count as active (for merge and for "exclude inactive records" in duplicate rules)
    active_states: frozenset[int] = frozenset({0})
    # the hierarchy parent used by Merge's parenting checks
    parent_attr: str | None = None

    @property
    def mergeable(self) -> bool:
        return self.name in MERGEABLE

    def lookup_attrs(self) -> list[Attr]:
        return [a for a in self.attrs.values() if a.is_lookup]


def _a(name: str, type_: str = STRING, **kw: object) -> Attr:
    return Attr(name, type_, **kw)  # type: ignore[arg-type]


def _ro(name: str, type_: str = STRING, **kw: object) -> Attr:
    return Attr(name, type_, updatable=False, creatable=False, **kw)  # type: ignore[arg-type]


def _address(prefix: str) -> list[Attr]:
    parts = ["line1", "line2", "line3", "city", "stateorprovince", "postalcode", "country"]
    return [_a(f"{prefix}_{p}") for p in parts] + [_ro(f"{prefix}_composite", MEMO)]


def _system(entity: str, pid: str, state_status: bool = True) -> list[Attr]:
    attrs = [
        _ro(pid, UNIQUEID),
        _ro("createdon", DATETIME),
        _ro("modifiedon", DATETIME),
        _ro("versionnumber", BIGINT),
        _ro("createdby", LOOKUP, targets=("systemuser",)),
        _ro("modifiedby", LOOKUP, targets=("systemuser",)),
        _a("ownerid", OWNER, targets=("systemuser",)),
    ]
    if state_status:
        attrs += [Attr("statecode", STATE, updatable=False), Attr("statuscode", STATUS, updatable=False)]
    return attrs


def _merge_columns(entity: str) -> list[Attr]:
    return [_ro("merged", BOOLEAN), _ro("masterid", LOOKUP, targets=(entity,))]


def _entity(name: str, set_name: str, pid: str, pname: str, otc: int, attrs: list[Attr], **kw: object) -> Entity:
    return Entity(name, set_name, pid, pname, otc, {a.name: a for a in attrs}, **kw)  # type: ignore[arg-type]


_CONTACT = _entity(
    "contact", "contacts", "contactid", "fullname", 2,
    _system("contact", "contactid") + _merge_columns("contact") + [
        _a("firstname"), _a("middlename"), _a("lastname"), _ro("fullname"), _a("salutation"), _a("jobtitle"),
        _a("emailaddress1"), _a("emailaddress2"), _a("emailaddress3"),
        _a("telephone1"), _a("telephone2"), _a("telephone3"), _a("mobilephone"), _a("fax"),
        *_address("address1"), *_address("address2"),
        _a("donotemail", BOOLEAN), _a("donotphone", BOOLEAN), _a("donotbulkemail", BOOLEAN),
        _a("donotpostalmail", BOOLEAN), _a("birthdate", DATETIME), _a("gendercode", PICKLIST),
        _a("preferredcontactmethodcode", PICKLIST), _a("description", MEMO),
        _a("parentcustomerid", CUSTOMER, targets=("account", "contact")),
        _a("new_isvip", BOOLEAN), _a("new_ismember", BOOLEAN), _a("new_membershipnumber"),
        _a("new_lastcontacteddate", DATETIME),
    ],
    merged_state=(1, 2), parent_attr="parentcustomerid",
)

_ACCOUNT = _entity(
    "account", "accounts", "accountid", "name", 1,
    _system("account", "accountid") + _merge_columns("account") + [
        _a("name"), _a("accountnumber"), _a("emailaddress1"), _a("emailaddress2"), _a("emailaddress3"),
        _a("telephone1"), _a("telephone2"), _a("telephone3"), _a("fax"), _a("websiteurl"),
        *_address("address1"), *_address("address2"),
        _a("donotemail", BOOLEAN), _a("donotphone", BOOLEAN), _a("revenue", MONEY),
        _a("numberofemployees", INTEGER), _a("industrycode", PICKLIST), _a("description", MEMO),
        _a("parentaccountid", LOOKUP, targets=("account",)),
        _a("primarycontactid", LOOKUP, targets=("contact",)),
        _a("new_isvip", BOOLEAN),
    ],
    merged_state=(1, 2), parent_attr="parentaccountid",
)

_LEAD = _entity(
    "lead", "leads", "leadid", "fullname", 4,
    _system("lead", "leadid") + _merge_columns("lead") + [
        _a("subject"), _a("firstname"), _a("lastname"), _ro("fullname"), _a("companyname"),
        _a("emailaddress1"), _a("emailaddress2"), _a("emailaddress3"),
        _a("telephone1"), _a("telephone2"), _a("telephone3"), _a("mobilephone"),
        *_address("address1"), _a("donotemail", BOOLEAN), _a("description", MEMO),
        _a("parentaccountid", LOOKUP, targets=("account",)),
        _a("parentcontactid", LOOKUP, targets=("contact",)),
    ],
    # lead: Disqualified (2), status Canceled (7)
    merged_state=(2, 7),
)

_INCIDENT = _entity(
    "incident", "incidents", "incidentid", "title", 112,
    _system("incident", "incidentid") + _merge_columns("incident") + [
        _a("title"), _ro("ticketnumber"), _a("description", MEMO), _a("prioritycode", PICKLIST),
        _a("customerid", CUSTOMER, targets=("account", "contact")),
        _a("parentcaseid", LOOKUP, targets=("incident",)),
    ],
    # incident: Canceled (2), status Merged (2000)
    merged_state=(2, 2000), parent_attr="parentcaseid",
)

_QUOTE = _entity(
    "quote", "quotes", "quoteid", "name", 1084,
    _system("quote", "quoteid") + [
        _a("name"), _a("totalamount", MONEY), _a("description", MEMO),
        _a("customerid", CUSTOMER, targets=("account", "contact")),
    ],
    # Draft (0) and Active (1) are both open; Won (2) and Closed (3) are not
    active_states=frozenset({0, 1}),
)

_LIST = _entity(
    "list", "lists", "listid", "listname", 4300,
    _system("list", "listid") + [
        _a("listname"), _a("type", BOOLEAN), _a("createdfromcode", PICKLIST), _ro("membercount", INTEGER),
        _a("description", MEMO),
    ],
)

_LISTMEMBER = _entity(
    "listmember", "listmembers", "listmemberid", "listmemberid", 4301,
    [_ro("listmemberid", UNIQUEID), _ro("createdon", DATETIME), _ro("modifiedon", DATETIME),
     _a("listid", LOOKUP, targets=("list",)),
     _a("entityid", LOOKUP, targets=("account", "contact", "lead"))],
)

_TASK = _entity(
    "task", "tasks", "activityid", "subject", 4212,
    _system("task", "activityid") + [
        _a("subject"), _a("description", MEMO), _a("scheduledend", DATETIME),
        _a("regardingobjectid", LOOKUP, targets=("account", "contact", "lead", "incident")),
    ],
)

_SYSTEMUSER = _entity(
    "systemuser", "systemusers", "systemuserid", "fullname", 8,
    [_ro("systemuserid", UNIQUEID), _ro("createdon", DATETIME), _ro("modifiedon", DATETIME),
     _a("fullname"), _a("domainname"), _a("internalemailaddress"), _a("isdisabled", BOOLEAN)],
)

_SAVEDQUERY = _entity(
    "savedquery", "savedqueries", "savedqueryid", "name", 1039,
    [_ro("savedqueryid", UNIQUEID), _ro("createdon", DATETIME), _ro("modifiedon", DATETIME),
     _a("name"), _a("returnedtypecode", ENTITYNAME), _a("fetchxml", MEMO), _a("layoutxml", MEMO),
     _a("querytype", INTEGER), _a("isdefault", BOOLEAN), Attr("statecode", STATE, updatable=False)],
)

_USERQUERY = _entity(
    "userquery", "userqueries", "userqueryid", "name", 4230,
    [_ro("userqueryid", UNIQUEID), _ro("createdon", DATETIME), _ro("modifiedon", DATETIME),
     _a("name"), _a("returnedtypecode", ENTITYNAME), _a("fetchxml", MEMO), _a("layoutxml", MEMO),
     _a("querytype", INTEGER), _a("ownerid", OWNER, targets=("systemuser",)),
     Attr("statecode", STATE, updatable=False)],
)

_DUPLICATERULE = _entity(
    "duplicaterule", "duplicaterules", "duplicateruleid", "name", 4414,
    _system("duplicaterule", "duplicateruleid") + [
        _a("name"), _a("description", MEMO), _a("baseentityname"), _a("matchingentityname"),
        _a("iscasesensitive", BOOLEAN), _a("excludeinactiverecords", BOOLEAN),
    ],
)

_DUPLICATERULECONDITION = _entity(
    "duplicaterulecondition", "duplicateruleconditions", "duplicateruleconditionid", "baseattributename", 4416,
    [_ro("duplicateruleconditionid", UNIQUEID), _ro("createdon", DATETIME), _ro("modifiedon", DATETIME),
     _a("baseattributename"), _a("matchingattributename"), _a("operatorcode", PICKLIST),
     _a("operatorparam", INTEGER), _a("ignoreblankvalues", BOOLEAN),
     _a("regardingobjectid", LOOKUP, targets=("duplicaterule",))],
)

_ASYNCOPERATION = _entity(
    "asyncoperation", "asyncoperations", "asyncoperationid", "name", 4700,
    [_ro("asyncoperationid", UNIQUEID), _ro("createdon", DATETIME), _ro("modifiedon", DATETIME),
     _a("name"), _a("operationtype", PICKLIST), Attr("statecode", STATE), Attr("statuscode", STATUS),
     _a("message", MEMO), _a("friendlymessage", MEMO), _a("startedon", DATETIME), _a("completedon", DATETIME),
     _a("ownerid", OWNER, targets=("systemuser",))],
)

_DUPLICATERECORD = _entity(
    "duplicaterecord", "duplicaterecords", "duplicateid", "duplicateid", 4415,
    [_ro("duplicateid", UNIQUEID), _ro("createdon", DATETIME),
     _ro("asyncoperationid", LOOKUP, targets=("asyncoperation",)),
     _ro("baserecordid", LOOKUP, targets=("account", "contact", "lead")),
     _ro("duplicaterecordid", LOOKUP, targets=("account", "contact", "lead")),
     _ro("duplicateruleid", LOOKUP, targets=("duplicaterule",))],
)

SCHEMA: dict[str, Entity] = {
    e.name: e
    for e in (
        _CONTACT, _ACCOUNT, _LEAD, _INCIDENT, _QUOTE, _LIST, _LISTMEMBER, _TASK, _SYSTEMUSER, _SAVEDQUERY,
        _USERQUERY, _DUPLICATERULE, _DUPLICATERULECONDITION, _ASYNCOPERATION, _DUPLICATERECORD,
    )
}
BY_SET_NAME: dict[str, Entity] = {e.set_name: e for e in SCHEMA.values()}

# Related rows Merge moves from the subordinate to the master: (related entity, its lookup column).
# Driven by one-to-many relationships whose merge cascade is Cascade All (merge-rules.md).
MERGE_CASCADES: tuple[tuple[str, str], ...] = (
    ("contact", "parentcustomerid"),
    ("account", "parentaccountid"),
    ("account", "primarycontactid"),
    ("lead", "parentaccountid"),
    ("lead", "parentcontactid"),
    ("incident", "customerid"),
    ("incident", "parentcaseid"),
    ("quote", "customerid"),
    ("task", "regardingobjectid"),
    ("listmember", "entityid"),
)


def entity(name: str) -> Entity:
    """The entity by logical name; KeyError when the emulator does not serve it."""
    return SCHEMA[name]
