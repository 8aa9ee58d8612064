"""Litestar dependency injection: each route names the service it uses, with its concrete type.

Handlers ask by parameter name and type (``jobs: Jobs``). Code that only holds a connection
(guards, middleware) reads the same services through `services_of`, the one accessor of the
application state.

A dependency is never named like a field of a request body: Litestar takes a body error at a
key that names a dependency for a server fault (500, not 422), so the plugin host is
``plugin_host`` (the generate body has ``plugins``). tests/api/test_dependencies.py checks
every route.
"""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from impasto.plugins.manager import PluginHost
from impasto.services.container import Services
from impasto.services.errors import ConflictError, NotFoundError
from impasto.services.events import EventBus
from impasto.services.images import UploadStore
from impasto.services.jobs import JobService
from impasto.services.manager import ModelManager
from impasto.services.models import ModelCatalog


def services_of(state: State) -> Services:
    """The daemon's services, as the application state holds them (``app.state``)."""
    services: Services = state.services
    return services


def provide_services(state: State) -> Services:
    return services_of(state)


def provide_jobs(state: State) -> JobService:
    return services_of(state).jobs


def provide_catalog(state: State) -> ModelCatalog:
    return services_of(state).catalog


def provide_uploads(state: State) -> UploadStore:
    return services_of(state).uploads


def provide_bus(state: State) -> EventBus:
    return services_of(state).bus


def provide_manager(state: State) -> ModelManager:
    """The model manager; a daemon built without one answers 409 on the routes that need it."""
    manager = services_of(state).models
    if manager is None:
        raise ConflictError("the model manager is not running in this process")
    return manager


def provide_machine_provider(state: State) -> str:
    """This machine's execution provider as installs choose it; "" without a model manager."""
    manager = services_of(state).models
    return manager.installer.machine_provider() if manager is not None else ""


def provide_plugins(state: State) -> PluginHost:
    """The plugin host; a daemon with plugins off answers 404 on the plugin routes."""
    host = services_of(state).plugins
    if host is None:
        raise NotFoundError("plugins are not loaded in this daemon")
    return host


DEPENDENCIES: dict[str, Provide] = {
    "services": Provide(provide_services, sync_to_thread=False),
    "jobs": Provide(provide_jobs, sync_to_thread=False),
    "catalog": Provide(provide_catalog, sync_to_thread=False),
    "uploads": Provide(provide_uploads, sync_to_thread=False),
    "bus": Provide(provide_bus, sync_to_thread=False),
    "manager": Provide(provide_manager, sync_to_thread=False),
    "machine_provider": Provide(provide_machine_provider, sync_to_thread=False),
    "plugin_host": Provide(provide_plugins, sync_to_thread=False),
}
"""Name -> provider, registered on the application; a handler asks by parameter name and type."""

Jobs: TypeAlias = NamedDependency[JobService]
"""A handler parameter ``jobs: Jobs`` receives the daemon's JobService."""
Catalog: TypeAlias = NamedDependency[ModelCatalog]
"""A handler parameter ``catalog: Catalog`` receives the daemon's ModelCatalog."""
Uploads: TypeAlias = NamedDependency[UploadStore]
"""A handler parameter ``uploads: Uploads`` receives the daemon's UploadStore."""
Bus: TypeAlias = NamedDependency[EventBus]
"""A handler parameter ``bus: Bus`` receives the daemon's EventBus."""
Manager: TypeAlias = NamedDependency[ModelManager]
"""A handler parameter ``manager: Manager`` receives the ModelManager (409 when there is none)."""
MachineProvider: TypeAlias = NamedDependency[str]
"""A handler parameter ``machine_provider: MachineProvider`` receives the provider installs use."""
Plugins: TypeAlias = NamedDependency[PluginHost]
"""A handler parameter ``plugin_host: Plugins`` receives the PluginHost (404 with plugins off)."""
AllServices: TypeAlias = NamedDependency[Services]
"""A handler parameter ``services: AllServices`` receives every service (for reports)."""
