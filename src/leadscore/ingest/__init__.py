"""Ingestion: Segment messages validated, stored, resolved to leads and scored."""

from leadscore.ingest.validate import MESSAGE_TYPES, Message, validate

__all__ = ["MESSAGE_TYPES", "Message", "validate"]
