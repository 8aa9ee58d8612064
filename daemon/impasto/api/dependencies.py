"""Litestar dependency injection: each route names the service it uses, with its concrete type."""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from impasto.services.container import Services
from impasto.services.images import UploadStore
from impasto.services.jobs import JobService
from impasto.services.models import ModelCatalog


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def provide_jobs(state: State) -> JobService:
    return provide_services(state).jobs


def provide_catalog(state: State) -> ModelCatalog:
    return provide_services(state).catalog


def provide_uploads(state: State) -> UploadStore:
    return provide_services(state).uploads


DEPENDENCIES: dict[str, Provide] = {
    "services": Provide(provide_services, sync_to_thread=False),
    "jobs": Provide(provide_jobs, sync_to_thread=False),
    "catalog": Provide(provide_catalog, sync_to_thread=False),
    "uploads": Provide(provide_uploads, sync_to_thread=False),
}
"""Name -> provider, registered on the application; a handler asks by parameter name and type."""

Jobs: TypeAlias = NamedDependency[JobService]
"""A handler parameter ``jobs: Jobs`` receives the daemon's JobService."""
Catalog: TypeAlias = NamedDependency[ModelCatalog]
"""A handler parameter ``catalog: Catalog`` receives the daemon's ModelCatalog."""
Uploads: TypeAlias = NamedDependency[UploadStore]
"""A handler parameter ``uploads: Uploads`` receives the daemon's UploadStore."""
AllServices: TypeAlias = NamedDependency[Services]
"""A handler parameter ``services: AllServices`` receives every service (for reports)."""
