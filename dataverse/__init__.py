"""The one Dataverse Web API client and what it knows about the service: metadata, ids, published rules.

Only this package speaks HTTP or looks at a status code (DESIGN.md section 2).
"""

from dataverse.client import DEFAULT_SETTINGS, ClientSettings, DataverseClient
from dataverse.environment import Environment
from dataverse.metadata import AttributeMetadata, EntityMetadata
from dataverse.odata import odata_string, validate_entity_name, validate_guid

__all__ = ["DEFAULT_SETTINGS", "AttributeMetadata", "ClientSettings", "DataverseClient", "EntityMetadata",
           "Environment", "odata_string", "validate_entity_name", "validate_guid"]
