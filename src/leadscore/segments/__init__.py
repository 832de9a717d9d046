"""Segments: named, dynamic groups of leads (DESIGN.md §3b), evaluated in batch and kept live."""

from leadscore.segments.definition import Segment, load_segment, load_segments

__all__ = ["Segment", "load_segment", "load_segments"]
