"""The shapes the emulator's tables are written in: attribute types, `Attr`, `Entity`, and small builders.

Pure data. `tables.py` uses these to define every table; `schema.py` assembles them into `SCHEMA`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Attribute types as Dataverse names them (AttributeMetadata.AttributeType).
STRING, MEMO, INTEGER, BIGINT, BOOLEAN, DATETIME = "String", "Memo", "Integer", "BigInt", "Boolean", "DateTime"
DECIMAL, MONEY, PICKLIST, STATE, STATUS = "Decimal", "Money", "Picklist", "State", "Status"
LOOKUP, CUSTOMER, OWNER, UNIQUEID, ENTITYNAME = "Lookup", "Customer", "Owner", "Uniqueidentifier", "EntityName"
LOOKUP_TYPES = frozenset({LOOKUP, CUSTOMER, OWNER})
# Default MaxLength per type when a table does not give one (metadata and write validation agree).
DEFAULT_MAX_LENGTH = {STRING: 100, MEMO: 2000}


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
    navs: tuple[str, ...] = ()                        # navigation property per target (same order as targets)
    options: tuple[tuple[int, str], ...] = ()         # picklist options (value, label)
    max_length: int | None = None                     # strings and memos
    display: str | None = None                        # DisplayName label
    schema_name: str | None = None                    # SchemaName, when it is not the logical name capitalised
    required: str = "None"                            # RequiredLevel: None | ApplicationRequired | SystemRequired

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    def nav_name(self, target: str) -> str:
        """Navigation property used to write this lookup (`x@odata.bind`): suffixed when polymorphic."""
        if self.navs:
            return self.navs[self.targets.index(target)]
        return self.name if len(self.targets) <= 1 else f"{self.name}_{target}"

    @property
    def limit(self) -> int | None:
        return self.max_length or DEFAULT_MAX_LENGTH.get(self.type)


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
    schema_name: str = ""            # EntityMetadata.SchemaName (e.g. Contact)
    collection_schema_name: str = ""  # EntityMetadata.CollectionSchemaName (e.g. Contacts)
    display: str = ""                # DisplayName
    display_collection: str = ""     # DisplayCollectionName
    ownership: str = "UserOwned"     # OwnershipType
    is_activity: bool = False
    is_intersect: bool = False

    @property
    def mergeable(self) -> bool:
        return self.name in MERGEABLE

    def lookup_attrs(self) -> list[Attr]:
        return [a for a in self.attrs.values() if a.is_lookup]


# Entities the Merge message accepts (DESIGN.md section 3).
MERGEABLE = frozenset({"account", "contact", "lead", "incident"})


def col(name: str, type_: str = STRING, **kw: object) -> Attr:
    return Attr(name, type_, **kw)  # type: ignore[arg-type]


def ro(name: str, type_: str = STRING, **kw: object) -> Attr:
    """A read-only column (IsValidForCreate and IsValidForUpdate false)."""
    return Attr(name, type_, updatable=False, creatable=False, **kw)  # type: ignore[arg-type]


def picklist(name: str, options: dict[int, str], **kw: object) -> Attr:
    return Attr(name, PICKLIST, options=tuple(options.items()), **kw)  # type: ignore[arg-type]


def regarding(entity: str, targets: tuple[str, ...], name: str = "regardingobjectid") -> Attr:
    """An activity's polymorphic `regardingobjectid`: navigation properties `regardingobjectid_{target}_{entity}`."""
    return Attr(name, LOOKUP, targets=targets, navs=tuple(f"{name}_{t}_{entity}" for t in targets),
                display="Regarding")


def address(prefix: str) -> list[Attr]:
    lengths = {"line1": 250, "line2": 250, "line3": 250, "city": 80, "stateorprovince": 50, "postalcode": 20,
               "country": 80}
    return [col(f"{prefix}_{p}", max_length=n) for p, n in lengths.items()] + [ro(f"{prefix}_composite", MEMO)]


def system(entity: str, pid: str, state_status: bool = True) -> list[Attr]:
    attrs = [
        ro(pid, UNIQUEID, required="SystemRequired"),
        ro("createdon", DATETIME, display="Created On"),
        ro("modifiedon", DATETIME, display="Modified On"),
        ro("versionnumber", BIGINT, display="Version Number"),
        ro("createdby", LOOKUP, targets=("systemuser",), display="Created By"),
        ro("modifiedby", LOOKUP, targets=("systemuser",), display="Modified By"),
        col("ownerid", OWNER, targets=("systemuser",), display="Owner", required="SystemRequired"),
    ]
    if state_status:
        attrs += state_status_attrs()
    return attrs


def state_status_attrs() -> list[Attr]:
    """statecode is valid for update only (IsValidForCreate false); statuscode for both (contact.md)."""
    return [Attr("statecode", STATE, creatable=False, display="Status", required="SystemRequired"),
            Attr("statuscode", STATUS, display="Status Reason")]


def merge_columns(entity: str) -> list[Attr]:
    return [ro("merged", BOOLEAN, display="Merged"), ro("masterid", LOOKUP, targets=(entity,), display="Master ID")]


def entity(name: str, set_name: str, pid: str, pname: str, otc: int, attrs: list[Attr], *, schema: str,
           collection: str, display: str, display_collection: str = "", **kw: object) -> Entity:
    return Entity(name, set_name, pid, pname, otc, {a.name: a for a in attrs}, schema_name=schema,  # type: ignore
                  collection_schema_name=collection, display=display,
                  display_collection=display_collection or display + "s", **kw)
