"""Input and output: events and leads read into canonical DuckDB views, tables written out."""

from leadscore.io.readers import ReadReport, events_of, lead_of, read_events, read_leads
from leadscore.io.writers import write_table

__all__ = ["ReadReport", "events_of", "lead_of", "read_events", "read_leads", "write_table"]
