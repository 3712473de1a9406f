"""Table metadata as the client caches it: names, primary columns, and columns with their flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
_UNSELECTABLE_TYPES = frozenset({"PartyList", "CalendarRules"})


@dataclass(frozen=True)
class AttributeMetadata:
    """One column of a table, as far as reading and merging need it."""

    logical_name: str
    attribute_type: str
    is_valid_for_update: bool
    is_valid_for_read: bool
    attribute_of: str | None = None
    targets: tuple[str, ...] = ()  # lookup targets, e.g. ("account", "contact")

    @property
    def is_lookup(self) -> bool:
        return self.attribute_type in _LOOKUP_TYPES

    @property
    def select_name(self) -> str:
        """The Web API property to $select: ``_x_value`` for a lookup (``x`` itself is refused), else ``x``."""
        return f"_{self.logical_name}_value" if self.is_lookup else self.logical_name


@dataclass(frozen=True)
class EntityMetadata:
    """A table's names and columns (EntityDefinitions + Attributes)."""

    logical_name: str
    entity_set_name: str
    primary_id: str
    primary_name: str
    object_type_code: int | None
    attributes: Mapping[str, AttributeMetadata]

    def updatable(self) -> frozenset[str]:
        """Logical names with IsValidForUpdate: the only columns UpdateContent may carry."""
        return frozenset(name for name, a in self.attributes.items() if a.is_valid_for_update)

    def readable(self) -> list[str]:
        """The $select list: readable, not a companion (AttributeOf), lookups as ``_x_value``."""
        return sorted(
            a.select_name
            for a in self.attributes.values()
            if a.is_valid_for_read and not a.attribute_of and a.attribute_type not in _UNSELECTABLE_TYPES
        )

    def lookups(self) -> dict[str, tuple[str, ...]]:
        """Lookup / customer / owner columns -> the tables they may point to."""
        return {name: a.targets for name, a in self.attributes.items() if a.is_lookup}
