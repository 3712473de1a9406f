"""Relationships between the tables, generated from their lookups: the one source for relationship metadata
(`OneToManyRelationships`, `ManyToOneRelationships`, `ManyToManyRelationships`), collection-valued navigation
properties (`$expand`, `$filter` lambdas, `contacts(id)/Contact_Tasks`) and the Merge cascade.

Every lookup column and each of its targets is one 1:N relationship (a polymorphic lookup is one relationship
per target type, each with its own navigation property, e.g. `regardingobjectid_contact_task`). Names and
cascade configurations follow Microsoft's table reference (contact.md, lead.md, opportunity.md: for example
`Contact_Tasks` cascades everything, `account_primary_contact` cascades Merge only, `contact_master_contact`
and `Contact_DuplicateBaseRecord` do not cascade Merge); the rest follow the same patterns (README, Unverified).
Merge moves the rows of every 1:N relationship of the merged table whose `CascadeConfiguration.Merge` is
`Cascade`, and the marketing-list memberships of its N:N `list*_association` relationships.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .schema import SCHEMA

CASCADE_KEYS = ("Assign", "Delete", "Merge", "Reparent", "Share", "Unshare")
# Assign, Delete, Merge, Reparent, Share, Unshare
PROFILES: dict[str, tuple[str, ...]] = {
    "parental": ("Cascade",) * 6,
    "customer": ("Cascade", "RemoveLink", "Cascade", "Cascade", "Cascade", "Cascade"),
    "link": ("NoCascade", "RemoveLink", "Cascade", "NoCascade", "NoCascade", "NoCascade"),
    "reference": ("NoCascade", "RemoveLink", "NoCascade", "NoCascade", "NoCascade", "NoCascade"),
    "system": ("NoCascade",) * 6,
    "owned": ("NoCascade", "Cascade", "NoCascade", "NoCascade", "NoCascade", "NoCascade"),
}
_PLURAL = {"task": "Tasks", "phonecall": "Phonecalls", "email": "Emails", "appointment": "Appointments"}


@dataclass(frozen=True)
class OneToMany:
    schema_name: str
    referenced_entity: str
    referenced_attribute: str
    referencing_entity: str
    referencing_attribute: str
    referenced_nav: str       # collection-valued, on the referenced table
    referencing_nav: str      # single-valued, on the referencing table
    cascade: tuple[str, ...]

    @property
    def merges(self) -> bool:
        return self.cascade[2] == "Cascade"

    def cascade_json(self) -> dict[str, str]:
        return dict(zip(CASCADE_KEYS, self.cascade, strict=True)) | {"Archive": "NoCascade",
                                                                     "RollupView": "NoCascade"}


@dataclass(frozen=True)
class ManyToMany:
    schema_name: str
    intersect_entity: str
    entity1: str
    entity1_attribute: str
    entity1_nav: str
    entity2: str
    entity2_attribute: str
    entity2_nav: str


def _cap(name: str) -> str:
    return name[:1].upper() + name[1:]


def _name(entity: str, attr: str, target: str) -> tuple[str, str]:
    """(SchemaName, cascade profile) of the relationship behind one lookup and one of its targets."""
    specific: dict[tuple[str, str], tuple[str, str]] = {
        ("contact", "parentcustomerid"): (f"contact_customer_{target}s", "customer"),
        ("account", "parentaccountid"): ("account_parent_account", "link"),
        ("account", "primarycontactid"): ("account_primary_contact", "link"),
        ("lead", "parentaccountid"): ("lead_parent_account", "link"),
        ("lead", "parentcontactid"): ("lead_parent_contact", "link"),
        ("incident", "customerid"): (f"incident_customer_{target}s", "customer"),
        ("incident", "parentcaseid"): ("incident_parent_incident", "link"),
        ("quote", "customerid"): (f"quote_customer_{target}s", "customer"),
        ("opportunity", "customerid"): (f"opportunity_customer_{target}s", "customer"),
        ("opportunity", "parentaccountid"): ("opportunity_parent_account", "link"),
        ("opportunity", "parentcontactid"): ("opportunity_parent_contact", "link"),
        ("annotation", "objectid"): (f"{_cap(target)}_Annotation", "parental"),
        ("duplicaterecord", "baserecordid"): (f"{_cap(target)}_DuplicateBaseRecord", "owned"),
        ("duplicaterecord", "duplicaterecordid"): (f"{_cap(target)}_DuplicateMatchingRecord", "owned"),
        ("duplicaterecord", "asyncoperationid"): ("AsyncOperation_DuplicateBaseRecord", "owned"),
        ("duplicaterecord", "duplicateruleid"): ("DuplicateRule_DuplicateBaseRecord", "owned"),
        ("duplicaterulecondition", "regardingobjectid"): ("DuplicateRule_DuplicateRuleConditions", "parental"),
    }
    if (entity, attr) in specific:
        return specific[(entity, attr)]
    if attr == "regardingobjectid" and entity in _PLURAL:
        return f"{_cap(target)}_{_PLURAL[entity]}", "parental"
    if attr == "masterid":
        return f"{entity}_master_{entity}", "reference"
    base = f"{entity}base" if entity in ("contact", "account") else entity
    if attr in ("createdby", "modifiedby"):
        return f"lk_{base}_{attr}", "system"
    if attr == "ownerid":
        return f"{entity}_owning_user", "system"
    return f"{target}_{entity}_{attr}", "reference"


@functools.lru_cache(maxsize=1)
def one_to_many_all() -> tuple[OneToMany, ...]:
    out = []
    for meta in SCHEMA.values():
        if meta.is_intersect:
            continue  # list membership is N:N (listmember is its intersect table)
        for attr in meta.lookup_attrs():
            for target in attr.targets:
                name, profile = _name(meta.name, attr.name, target)
                out.append(OneToMany(name, target, SCHEMA[target].primary_id, meta.name, attr.name, name,
                                     attr.nav_name(target), PROFILES[profile]))
    return tuple(out)


MANY_TO_MANY: tuple[ManyToMany, ...] = tuple(
    ManyToMany(f"list{member}_association", "listmember", "list", "listid", f"list{member}_association",
               member, "entityid", f"list{member}_association")
    for member in ("account", "contact", "lead")
)


def one_to_many(entity: str) -> list[OneToMany]:
    """Relationships where `entity` is the referenced (one) side."""
    return [r for r in one_to_many_all() if r.referenced_entity == entity]


def many_to_one(entity: str) -> list[OneToMany]:
    """Relationships where `entity` is the referencing (many) side."""
    return [r for r in one_to_many_all() if r.referencing_entity == entity]


def many_to_many(entity: str) -> list[ManyToMany]:
    return [r for r in MANY_TO_MANY if entity in (r.entity1, r.entity2)]


def collection_nav(entity: str, nav: str) -> OneToMany | None:
    """The 1:N relationship behind a collection-valued navigation property of `entity`."""
    return next((r for r in one_to_many(entity) if r.referenced_nav == nav), None)


def many_to_many_nav(entity: str, nav: str) -> ManyToMany | None:
    return next((r for r in many_to_many(entity) if nav in (r.entity1_nav, r.entity2_nav)), None)


def merge_cascades(entity: str) -> list[OneToMany]:
    """The relationships whose rows Merge moves from the subordinate to the master."""
    return [r for r in one_to_many(entity) if r.merges]


def merge_memberships(entity: str) -> list[ManyToMany]:
    """The N:N relationships whose intersect rows Merge moves (or drops when the master already has one)."""
    return [r for r in MANY_TO_MANY if r.entity2 == entity]
