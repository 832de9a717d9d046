"""The web dashboard: leads, a lead, pipeline, models, evaluation and handoffs, served by the
API app (`install`) behind the admin login."""

from leadscore.dashboard.routes import install

__all__ = ["install"]
