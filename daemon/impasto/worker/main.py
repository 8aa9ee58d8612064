"""The worker process: loads models, runs one job at a time, reports over its stdin/stdout pipe."""

from __future__ import annotations

import argparse
import io
import logging
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from impasto.worker.outputs import OutputError, write_outputs
from impasto.worker.params import build_params, job_model_folder
from impasto.worker.protocol import (
    CancelJob,
    FromWorker,
    JobCancelled,
    JobDone,
    JobFailed,
    LoadModel,
    ModelsLoaded,
    Ready,
    RunJob,
    Shutdown,
    Started,
    StepProgress,
    ToWorker,
    UnloadModels,
    decode_to_worker,
    encode_frame,
    read_frame,
)

log = logging.getLogger("impasto.worker")


class Channel:
    """The worker's end of the pipe: frames out on stdout, a reader thread for what comes in."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.inbox: queue.Queue[ToWorker | None] = queue.Queue()
        self.cancelled: set[str] = set()
        self.on_cancel: Any = None
        self._reader = threading.Thread(target=self._read, args=(inp,), daemon=True)
        self._reader.start()

    def send(self, message: FromWorker) -> None:
        frame = encode_frame(message)
        with self._lock:
            try:
                self._out.write(frame)
                self._out.flush()
            except (BrokenPipeError, ConnectionResetError):
                # The daemon is gone (killed): nobody reads what this worker does any more,
                # so it ends now, with one line rather than a traceback in its log.
                log.warning("the daemon closed the pipe; this worker exits")
                sys.stderr.flush()
                os._exit(0)

    def _read(self, inp: IO[bytes]) -> None:
        while True:
            body = read_frame(inp)
            if body is None:
                self.inbox.put(None)
                return
            message = decode_to_worker(body)
            if isinstance(message, CancelJob):
                self.cancelled.add(message.job_id)
                if self.on_cancel:
                    self.on_cancel(message.job_id)
            elif isinstance(message, Shutdown):
                if self.on_cancel:
                    self.on_cancel(None)
                self.inbox.put(message)
                # Stop reading: a thread still blocked on stdin when the interpreter exits
                # aborts it ("Fatal Python error: _enter_buffered_busy").
                return
            else:
                self.inbox.put(message)


def _preview_jpeg(image: Any) -> bytes:
    small = image.copy()
    small.thumbnail((256, 256))
    buf = io.BytesIO()
    small.convert("RGB").save(buf, format="JPEG", quality=70)
    return buf.getvalue()


class Worker:
    """Holds loaded pipelines for the keep-alive and turns RunJob messages into images."""

    def __init__(
        self, channel: Channel, choice: Any, plugins: Any = None, cache_dir: Path | None = None
    ) -> None:
        self.channel = channel
        self.choice = choice
        self.plugins = plugins
        # ONNX Runtime's optimised copies of the models, so later loads skip the optimisation.
        self.cache_dir = cache_dir
        self.pipelines: dict[str, tuple[Any, float]] = {}
        self.current: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        channel.on_cancel = self._cancel

    def _cancel(self, job_id: str | None) -> None:
        with self._lock:
            if self.current and (job_id is None or self.current[0] == job_id):
                self.current[1].cancel()

    def _pipeline(self, model_dir: str, keep_alive: float, job: RunJob | None = None) -> Any:
        from impasto.engine import load_pipeline

        entry = self.pipelines.get(model_dir)
        pipe = entry[0] if entry else None
        # One model at a time keeps memory bounded: switching models drops the others before
        # the new one opens, so the worker never holds two (an SDXL and an SD 1.5 at once).
        self._drop([d for d in self.pipelines if d != model_dir])
        if pipe is None and self.plugins is not None and job is not None:
            pipe = self.plugins.load_model(model_dir, job.plugins, job.plugin_options)
        if pipe is None:
            pipe = load_pipeline(Path(model_dir), self.choice, cache_dir=self.cache_dir)
        self.pipelines[model_dir] = (pipe, self._expiry(entry, keep_alive, job))
        return pipe

    @staticmethod
    def _expiry(entry: tuple[Any, float] | None, keep_alive: float, job: RunJob | None) -> float:
        """When a model is dropped: ``keep_alive`` from now; a job (which carries the daemon's
        setting) never shortens what a load asked for, a load sets it as asked."""
        expires = time.time() + keep_alive
        return max(expires, entry[1]) if entry is not None and job is not None else expires

    def _drop(self, model_dirs: list[str]) -> None:
        """Close these models' sessions and give their memory back to the system."""
        for model_dir in model_dirs:
            entry = self.pipelines.pop(model_dir, None)
            if entry is not None:
                entry[0].close()
        if model_dirs:
            from impasto.engine.sessions import return_freed_memory

            return_freed_memory()

    def expire(self) -> None:
        now = time.time()
        expired = [d for d, (_, expires) in self.pipelines.items() if expires <= now]
        if expired:
            self._drop(expired)
            self.report_models()

    def unload(self, model_dir: str | None) -> None:
        """Drop one model (or all when ``model_dir`` is None) and report what is left."""
        if model_dir is None:
            self.unload_all()
            return
        self._drop([model_dir] if model_dir in self.pipelines else [])
        self.report_models()

    def preload(self, model_dir: str, keep_alive: float) -> None:
        """Load a model before any job asks for it (``POST /models/{id}/load``); the report
        that follows answers the load, with its error when it failed."""
        error = ""
        try:
            self._pipeline(model_dir, keep_alive)
        except Exception as exc:  # a bad folder must not take the worker down
            log.exception("preloading %s failed", model_dir)
            error = f"{type(exc).__name__}: {exc}"
        self.report_models(load_of=model_dir, load_error=error)

    def unload_all(self) -> None:
        self._drop(list(self.pipelines))
        self.report_models()

    def next_expiry(self) -> float | None:
        return min((e for _, e in self.pipelines.values()), default=None)

    def report_models(self, load_of: str = "", load_error: str = "") -> None:
        loaded = [{"model_dir": d, "expires_at": e} for d, (_, e) in self.pipelines.items()]
        self.channel.send(ModelsLoaded(loaded=loaded, load_of=load_of, load_error=load_error))

    def run(self, job: RunJob) -> None:
        from impasto.engine import (
            CancelToken,
            EngineError,
            GenerationCancelled,
            InvalidRequestError,
        )
        from impasto.plugins import PluginError
        from impasto.worker.files import NotInstalledError

        token = CancelToken()
        model_dir = str(job_model_folder(job) or "")
        with self._lock:
            self.current = (job.job_id, token)
        if job.job_id in self.channel.cancelled:
            token.cancel()
        try:
            if not model_dir:
                raise NotInstalledError("model", f"model {job.plan.model!r} is no longer installed")
            params = build_params(job)
            loading = time.perf_counter()
            pipe = self._pipeline(model_dir, job.keep_alive, job)
            self.report_models()
            self.channel.send(Started(job_id=job.job_id, total=params.steps, seeds=[]))

            def progress(p: Any) -> None:
                preview = _preview_jpeg(p.preview) if p.preview is not None else None
                self.channel.send(StepProgress(job.job_id, p.step, p.total, preview))

            started = time.perf_counter()
            images = pipe.generate(params, progress=progress, cancel=token)
            generated = time.perf_counter()
            results = write_outputs(job, params, images, self.plugins, token)
            timings = {
                "load": round(started - loading, 6),
                "engine": round(generated - started, 6),
                "write": round(time.perf_counter() - generated, 6),
            }
            warnings = sorted({w for image in images for w in image.warnings})
            self.channel.send(
                JobDone(job_id=job.job_id, results=results, timings=timings, warnings=warnings)
            )
        except GenerationCancelled:
            self.channel.send(JobCancelled(job_id=job.job_id))
        except InvalidRequestError as exc:
            self.channel.send(JobFailed(job.job_id, exc.message, field=exc.field))
        except PluginError as exc:
            self.channel.send(JobFailed(job.job_id, exc.message))
        except NotInstalledError as exc:
            self.channel.send(JobFailed(job.job_id, exc.message, field=exc.field))
        except OutputError as exc:
            self.channel.send(JobFailed(job.job_id, str(exc), field="output_dir"))
        except (EngineError, OSError, ValueError) as exc:
            self.channel.send(JobFailed(job.job_id, f"{type(exc).__name__}: {exc}"))
        except Exception as exc:
            # A raised error (not a crash) would recur on retry: fail the job, keep the worker.
            log.exception("job %s failed", job.job_id)
            self.channel.send(JobFailed(job.job_id, f"generation failed: {exc}"))
        finally:
            with self._lock:
                self.current = None
            self.channel.cancelled.discard(job.job_id)
            entry = self.pipelines.get(model_dir)
            if entry:
                # The keep-alive counts from the job's end: report it, or GET /models/loaded
                # shows the expiry counted from its start (0 s left while the model stays).
                self.pipelines[model_dir] = (entry[0], self._expiry(entry, job.keep_alive, job))
                self.report_models()


def describe_choice(choice: Any) -> dict[str, Any]:
    """The provider choice as the daemon reports it in /system."""
    return {
        "name": choice.name,
        "providers": [name for name, _ in choice.providers],
        "rejected": [{"name": n, "reason": r} for n, r in choice.rejected],
        "device_id": choice.device_id,
        "threads": choice.threads,
    }


def load_plugins(data_dir: str, models_dir: str) -> Any:
    """The worker's own plugin host; which plugins run, and their config, come with each job."""
    from impasto.engine.schedulers import register_sampler
    from impasto.plugins.discovery import build_plugin_manager

    plugins = build_plugin_manager(
        data_dir=Path(data_dir) if data_dir else None,
        models_dir=Path(models_dir) if models_dir else None,
        persist=False,
    )
    plugins.register_samplers(register_sampler)
    return plugins


def run_worker(argv: list[str] | None = None) -> int:
    """Entry point of ``impasto worker``: speak the frame protocol on stdin/stdout until EOF."""
    parser = argparse.ArgumentParser(prog="impasto worker")
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--enable-tensorrt", action="store_true")
    parser.add_argument("--device-id", type=int, default=0)
    parser.add_argument("--data-dir", default="", help="finds single-file plugins in DIR/plugins")
    parser.add_argument("--models-dir", default="")
    parser.add_argument("--warm", metavar="MODEL_DIR", help="cache MODEL_DIR's graphs, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="worker: %(message)s")
    cache_dir = Path(args.data_dir) / "cache" / "ort" if args.data_dir else None
    # Ctrl+C reaches the whole process group; the daemon decides when its workers stop (it
    # sends Shutdown, or closes the pipe), so the worker itself ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must never corrupt the frame stream

    from impasto.engine import select_providers

    choice = select_providers(
        None if args.provider == "auto" else args.provider,
        enable_tensorrt=args.enable_tensorrt,
        device_id=args.device_id,
    )
    if args.warm:
        from impasto.worker.warm import warm

        return warm(Path(args.warm), choice, cache_dir)
    plugins = load_plugins(args.data_dir, args.models_dir)
    # Only now the reader thread: a startup error raised while it sat blocked on stdin made
    # the interpreter abort at exit (SIGABRT) instead of exiting with the error.
    channel = Channel(sys.stdin.buffer, out)
    channel.send(Ready(pid=os.getpid(), provider=describe_choice(choice)))
    worker = Worker(channel, choice, plugins, cache_dir)
    while True:
        expiry = worker.next_expiry()
        timeout = None if expiry is None else max(0.0, expiry - time.time())
        try:
            message = channel.inbox.get(timeout=timeout)
        except queue.Empty:
            worker.expire()
            continue
        if message is None or isinstance(message, Shutdown):
            worker.unload_all()
            return 0
        if isinstance(message, UnloadModels):
            worker.unload(message.model_dir)
        elif isinstance(message, LoadModel):
            worker.preload(message.model_dir, message.keep_alive)
        elif isinstance(message, RunJob):
            worker.run(message)
