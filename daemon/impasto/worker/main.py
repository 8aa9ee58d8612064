"""The worker process: loads models, runs one job at a time, reports over its stdin/stdout pipe."""

from __future__ import annotations

import argparse
import io
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from impasto.worker.protocol import (
    CancelJob,
    FromWorker,
    JobCancelled,
    JobDone,
    JobFailed,
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
            self._out.write(frame)
            self._out.flush()

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

    def __init__(self, channel: Channel, choice: Any) -> None:
        self.channel = channel
        self.choice = choice
        self.pipelines: dict[str, tuple[Any, float]] = {}
        self.current: tuple[str, Any] | None = None
        self._lock = threading.Lock()
        channel.on_cancel = self._cancel

    def _cancel(self, job_id: str | None) -> None:
        with self._lock:
            if self.current and (job_id is None or self.current[0] == job_id):
                self.current[1].cancel()

    def _pipeline(self, model_dir: str, keep_alive: float) -> Any:
        from impasto.engine import load_pipeline

        entry = self.pipelines.get(model_dir)
        pipe = entry[0] if entry else load_pipeline(Path(model_dir), self.choice)
        # One model at a time keeps memory bounded; switching models drops the others.
        for other in [d for d in self.pipelines if d != model_dir]:
            self.pipelines.pop(other)[0].close()
        self.pipelines[model_dir] = (pipe, time.time() + keep_alive)
        return pipe

    def expire(self) -> None:
        now = time.time()
        for model_dir, (pipe, expires) in list(self.pipelines.items()):
            if expires <= now:
                self.pipelines.pop(model_dir)
                pipe.close()
                self.report_models()

    def unload_all(self) -> None:
        for pipe, _ in self.pipelines.values():
            pipe.close()
        self.pipelines.clear()
        self.report_models()

    def next_expiry(self) -> float | None:
        return min((e for _, e in self.pipelines.values()), default=None)

    def report_models(self) -> None:
        loaded = [{"model_dir": d, "expires_at": e} for d, (_, e) in self.pipelines.items()]
        self.channel.send(ModelsLoaded(loaded=loaded))

    def run(self, job: RunJob) -> None:
        from impasto.engine import (
            CancelToken,
            EngineError,
            GenerationCancelled,
            InvalidRequestError,
        )

        token = CancelToken()
        with self._lock:
            self.current = (job.job_id, token)
        if job.job_id in self.channel.cancelled:
            token.cancel()
        try:
            params = build_params(job)
            loading = time.perf_counter()
            pipe = self._pipeline(job.model_dir, job.keep_alive)
            self.report_models()
            self.channel.send(Started(job_id=job.job_id, total=params.steps, seeds=[]))

            def progress(p: Any) -> None:
                preview = _preview_jpeg(p.preview) if p.preview is not None else None
                self.channel.send(StepProgress(job.job_id, p.step, p.total, preview))

            started = time.perf_counter()
            images = pipe.generate(params, progress=progress, cancel=token)
            generated = time.perf_counter()
            results = write_outputs(job, params, images)
            timings = {
                "load": round(started - loading, 6),
                "engine": round(generated - started, 6),
                "write": round(time.perf_counter() - generated, 6),
            }
            self.channel.send(JobDone(job_id=job.job_id, results=results, timings=timings))
        except GenerationCancelled:
            self.channel.send(JobCancelled(job_id=job.job_id))
        except InvalidRequestError as exc:
            self.channel.send(JobFailed(job.job_id, exc.message, field=exc.field))
        except (EngineError, OSError, ValueError) as exc:
            self.channel.send(JobFailed(job.job_id, f"{type(exc).__name__}: {exc}"))
        finally:
            with self._lock:
                self.current = None
            self.channel.cancelled.discard(job.job_id)
            entry = self.pipelines.get(job.model_dir)
            if entry:
                self.pipelines[job.model_dir] = (entry[0], time.time() + job.keep_alive)


def build_params(job: RunJob) -> Any:
    """The engine's request from the job's stored parameters (image paths opened here)."""
    from PIL import Image

    from impasto.engine import GenerationParams

    p = dict(job.params)
    images: dict[str, Any] = {}
    for key in ("init_image", "mask_image"):
        path = p.pop(key, None)
        if path:
            with Image.open(path) as img:
                images[key] = img.convert("L" if key == "mask_image" else "RGB")
    return GenerationParams(
        prompt=p["prompt"],
        negative_prompt=p.get("negative_prompt", ""),
        width=p["width"],
        height=p["height"],
        steps=p["steps"],
        cfg_scale=p["cfg_scale"],
        seed=p.get("seed"),
        batch_size=p.get("batch_size", 1),
        sampler=p.get("sampler", "euler_a"),
        schedule=p.get("schedule", "default"),
        strength=p.get("strength", 0.75),
        preview_every=job.preview_every,
        **images,
    )


def write_outputs(job: RunJob, params: Any, images: list[Any]) -> list[dict[str, Any]]:
    """Write each image atomically with its parameters embedded; return the result records."""
    from impasto.engine.schedulers import SAMPLER_NAMES
    from impasto.services.outputs import format_a1111_parameters, write_png

    folder = Path(job.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for index, generated in enumerate(images):
        text = format_a1111_parameters(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            steps=params.steps,
            sampler_name=SAMPLER_NAMES.get(params.sampler, params.sampler),
            schedule_type=params.schedule,
            cfg_scale=params.cfg_scale,
            seed=generated.seed,
            width=params.width,
            height=params.height,
            model=job.model_name,
            extra={"Denoising strength": params.strength} if params.init_image else None,
        )
        request = {**job.params, "seed": generated.seed, "model": job.model_name}
        path = write_png(
            generated.image,
            folder / f"{job.job_id}-{index}.png",
            parameters=text,
            request_json=request,
        )
        results.append(
            {
                "index": index,
                "path": str(path),
                "seed": generated.seed,
                "width": generated.image.width,
                "height": generated.image.height,
            }
        )
    return results


def describe_choice(choice: Any) -> dict[str, Any]:
    """The provider choice as the daemon reports it in /system."""
    return {
        "name": choice.name,
        "providers": [name for name, _ in choice.providers],
        "rejected": [{"name": n, "reason": r} for n, r in choice.rejected],
        "device_id": choice.device_id,
        "threads": choice.threads,
    }


def run_worker(argv: list[str] | None = None) -> int:
    """Entry point of ``impasto worker``: speak the frame protocol on stdin/stdout until EOF."""
    parser = argparse.ArgumentParser(prog="impasto worker")
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--enable-tensorrt", action="store_true")
    parser.add_argument("--device-id", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="worker: %(message)s")

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must never corrupt the frame stream
    channel = Channel(sys.stdin.buffer, out)

    from impasto.engine import select_providers

    choice = select_providers(
        None if args.provider == "auto" else args.provider,
        enable_tensorrt=args.enable_tensorrt,
        device_id=args.device_id,
    )
    channel.send(Ready(pid=os.getpid(), provider=describe_choice(choice)))
    worker = Worker(channel, choice)
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
            worker.unload_all()
        elif isinstance(message, RunJob):
            worker.run(message)
