"""Scoring engines: incremental (one event at a time) and batch (the model as one SQL plan)."""
