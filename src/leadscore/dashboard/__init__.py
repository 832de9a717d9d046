"""The web dashboard: leads, a lead, pipeline, models, evaluation, handoffs and sales, served
by the API app (`install`) behind the admin login."""

from fastapi import FastAPI

from leadscore.dashboard import routes, sales


def install(app: FastAPI) -> None:
    routes.install(app, extra=(sales.router,))


__all__ = ["install"]
