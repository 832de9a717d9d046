"""The HTTP API: Segment-compatible ingestion and the admin API (see `create_app`)."""

from leadscore.api.app import create_app

__all__ = ["create_app"]
