"""The daemon's parts built from its settings: stores, services, plugins' host and workers
(the one place that knows every layer; ``impasto serve`` runs what it builds)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from impasto import __version__
from impasto.paths import Paths
from impasto.plugins.manager import PluginHost
from impasto.services.container import Services
from impasto.services.events import EventBus
from impasto.services.images import UploadStore
from impasto.services.install_checks import InstallOptions
from impasto.services.installs import Installer
from impasto.services.jobs import JobOptions, JobService
from impasto.services.known import CatalogError
from impasto.services.manager import ModelManager
from impasto.services.models import ModelCatalog
from impasto.services.plan import Resolver
from impasto.services.runner import JobRunner, RunnerOptions
from impasto.services.system import gpus
from impasto.settings import Settings
from impasto.startup import StartupError
from impasto.store.db import open_database
from impasto.store.events import EventLog
from impasto.store.jobs import JobStore
from impasto.store.models import ModelStore
from impasto.worker.supervisor import Supervisor


def worker_count(settings: Settings, gpu_count: int | None = None) -> int:
    """``workers`` when set; 0 means one worker per NVIDIA GPU (pinned by device id), else 1."""
    if settings.workers > 0:
        return settings.workers
    found = len(gpus()) if gpu_count is None else gpu_count
    return max(1, found)


def build_supervisor(
    settings: Settings, paths: Paths, runner: JobRunner, worker_args: list[str]
) -> Supervisor:
    """Local worker processes, or Ray actors when ``cluster`` is set (only then is Ray imported)."""
    if settings.cluster:
        from impasto.worker.ray import RaySupervisor

        return RaySupervisor(runner, settings, paths.models_dir, log_dir=paths.log_dir)
    return Supervisor(
        runner, count=worker_count(settings), worker_args=worker_args, log_dir=paths.log_dir
    )


def install_roots(settings: Settings, paths: Paths) -> tuple[Path, ...]:
    """The folders local install sources may lie in (resolved, so links cannot escape them)."""
    if settings.install_roots:
        chosen = [Path(folder).expanduser() for folder in settings.install_roots]
    else:
        chosen = [Path.home(), paths.data_dir, Path(tempfile.gettempdir())]
        cwd = Path.cwd()
        if cwd != Path(cwd.anchor):  # the folder `impasto serve` ran in, unless it is / or C:\\
            chosen.append(cwd)
    return tuple(Path(os.path.realpath(folder)) for folder in chosen)


def build_services(settings: Settings, paths: Paths, plugins: PluginHost | None = None) -> Services:
    db = open_database(paths.database)
    store = JobStore(db)
    bus = EventBus(EventLog(db))
    model_store = ModelStore(db)
    catalog = ModelCatalog(
        paths.models_dir,
        store=model_store,
        show_test_models=settings.show_test_models,
        default_model=settings.default_model,
    )
    uploads = UploadStore(paths.uploads_dir, settings.max_upload_size)
    runner_options = RunnerOptions(
        output_dir=paths.output_dir,
        uploads_dir=paths.uploads_dir,
        max_attempts=settings.max_attempts,
        preview_every=settings.preview_every,
        keep_alive=settings.keep_alive,
        private_folders=(
            (paths.models_dir, "<models>"),
            (paths.output_dir, "<outputs>"),
            (paths.uploads_dir, "<uploads>"),
            (paths.temp_dir, "<temp>"),
            (paths.data_dir, "<data>"),
            (catalog.bundled_dir, "<bundled models>"),
        ),
    )
    runner = JobRunner(store, bus, catalog, runner_options, plugins)
    worker_args = ["--provider", settings.provider]
    worker_args += ["--data-dir", str(paths.data_dir), "--models-dir", str(paths.models_dir)]
    if settings.enable_tensorrt:
        worker_args.append("--enable-tensorrt")
    supervisor = build_supervisor(settings, paths, runner, worker_args)
    resolver = Resolver(catalog, uploads, settings.default_model)
    options = JobOptions(output_dir=paths.output_dir, max_queue=settings.max_queue)
    jobs = JobService(store, bus, resolver, runner, supervisor, options, plugins)
    install_options = InstallOptions(
        models_dir=paths.models_dir,
        staging_dir=paths.temp_dir / "installs",
        max_file_size=settings.max_file_size,
        hf_endpoint=settings.hf_endpoint,
        hf_token=settings.hf_token,
        catalog_file=settings.model_catalog,
        install_roots=install_roots(settings, paths),
        provider=lambda: str(supervisor.provider.get("name", "")),
        provider_setting=settings.provider,
        enable_tensorrt=settings.enable_tensorrt,
        warm_command=(*supervisor.command(), *worker_args),
    )
    installer = Installer(model_store, catalog, bus, install_options)
    try:
        installer.catalog_source.check()
    except CatalogError as exc:
        raise StartupError(f"model_catalog: {exc}") from None
    manager = ModelManager(
        catalog,
        model_store,
        installer,
        jobs,
        bus,
        supervisor,
        settings.keep_alive,
        ort_cache=paths.data_dir / "cache" / "ort",  # where the workers' --data-dir puts it
    )
    return Services(
        settings=settings,
        paths=paths,
        jobs=jobs,
        bus=bus,
        catalog=catalog,
        uploads=uploads,
        supervisor=supervisor,
        version=__version__,
        extra={"db": db},
        plugins=plugins,
        models=manager,
    )
