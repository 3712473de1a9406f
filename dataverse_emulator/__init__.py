"""A local Dataverse: a real HTTP server speaking the Web API subset this tool uses, with the real service's rules."""
