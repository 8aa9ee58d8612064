"""The blocking steps of one install: fetch into a staging folder, check, convert, move in.

Everything happens under the install's own staging folder in the temp dir; the models dir sees
the model only through one final rename, so an interrupted install never leaves half a model.
Fetching the source is services/stage_fetch.py; the job and its result, services/stage_job.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from impasto.engine.runs_on import assess_folder
from impasto.services.convert import (
    SIDECAR_SUFFIX,
    convert,
    missing_fp16_converter,
    optimize_fp16,
)
from impasto.services.detect import Detected, detect_file, detect_folder
from impasto.services.downloads import sha256_of
from impasto.services.optimize_stage import optimize_folder
from impasto.services.safety import check_file, check_tree
from impasto.services.stage_fetch import check_runnable, stage_source
from impasto.services.stage_job import Installed, InstallError, StageJob
from impasto.worker.files import ADAPTER_FOLDERS


def _tree_hash(root: Path) -> str:
    """sha256 over each file's relative path and sha256: one id for a whole folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{sha256_of(path)}\n".encode())
    return digest.hexdigest()


def _hub_env(job: StageJob) -> dict[str, str]:
    """What the converter child needs to fetch a single file's configs from the same hub."""
    # Its own cache under the staging folder: fetched configs go when the install ends.
    env = {"HF_ENDPOINT": job.hub_endpoint, "HF_HUB_CACHE": str(job.staging / "hf-cache")}
    if job.hub_token:
        env["HF_TOKEN"] = job.hub_token
    return env


def _convert(job: StageJob, source: Path) -> Path:
    if not job.options.get("convert", True):
        raise InstallError("this model needs converting to ONNX; retry with convert enabled")
    job.progress.start("convert")
    out = job.staging / "onnx"
    shutil.rmtree(out, ignore_errors=True)
    log = job.staging / "convert.log"
    convert(
        source,
        out,
        cancel=job.cancel,
        log=log,
        config=job.options.get("config") or "",
        env=_hub_env(job),
    )
    if job.options.get("precision") == "fp16":
        job.progress.start("optimize")
        optimize_fp16(out, cancel=job.cancel, log=log)
    return out


def _as_safetensors(path: Path) -> Path:
    """``path`` under a ``.safetensors`` name, which diffusers' single-file loader reads by
    (any other name it unpickles): a URL's download may be named ``128713`` or ``download``.
    Its content was checked as safetensors already."""
    if path.name.lower().endswith(".safetensors"):
        return path
    sidecar = path.with_suffix(SIDECAR_SUFFIX)  # A1111's .yaml beside it goes along
    if sidecar.is_file():
        sidecar.rename(path.with_name("checkpoint" + SIDECAR_SUFFIX))
    return path.rename(path.with_name("checkpoint.safetensors"))


def _match_precision(job: StageJob, folder: Path, precision: str) -> str:
    """Turn a ready fp32 ONNX folder to fp16 when the request asked for fp16; "" when the
    folder is what was asked, else why it stays as it is (the install's warning)."""
    asked = str(job.options.get("precision") or "") if job.options.get("precision_asked") else ""
    if asked == "fp32" and precision == "fp16":
        return "precision fp32 not applied: the model's weights are fp16 (they are not widened)"
    if asked != "fp16" or precision != "fp32":
        return ""
    problem = missing_fp16_converter()
    if problem:
        return f"precision fp16 not applied, the model stays fp32: {problem}"
    job.progress.start("convert")
    optimize_fp16(folder, cancel=job.cancel, log=job.staging / "convert.log")
    return ""


def prepare(job: StageJob) -> tuple[Path, Detected]:
    """Fetch, check and (if needed) convert; returns the ready folder or file and what it is."""
    ready = stage_source(job)
    job.progress.start("verify")
    converted = False
    try:
        if ready.is_file():
            check_file(ready, job.max_file_size)
            detected = detect_file(ready)
            if detected.type == "vae":
                raise InstallError(
                    f"{ready.name}: a VAE in one .safetensors file cannot run here: a VAE runs "
                    "as an ONNX folder (MODELS/vae/NAME/vae_decoder/model.onnx)"
                )
            if detected.type == "checkpoint":
                ready, converted = _convert(job, _as_safetensors(ready)), True
                detected = detect_folder(ready)
        else:
            check_tree(ready, job.max_file_size)
            detected = detect_folder(ready)
            if detected.layout == "diffusers":
                ready, converted = _convert(job, ready), True
                check_tree(ready, job.max_file_size)
                detected = detect_folder(ready)
    except ValueError as exc:
        raise InstallError(str(exc)) from exc
    unmet = ""
    if ready.is_dir() and detected.layout == "onnx" and not converted:
        unmet = _match_precision(job, ready, detected.precision)
        detected = detect_folder(ready)
    if ready.is_dir() and detected.layout == "onnx":
        job.progress.start("optimize")
        optimize_folder(
            ready,
            model_id=job.model_id,
            provider=job.provider,
            precision=str(job.options.get("precision") or ""),
            unet_precision=detected.precision,
            cancel=job.cancel,
            log=job.staging / "optimize.log",
        )
        detected = detect_folder(ready)  # int8 is read from the graph
    if ready.is_dir() and not job.warning:
        check_runnable(job, assess_folder(ready), job.model_id, refuse=False)
    job.warning = "; ".join(filter(None, [job.warning, unmet]))
    if ready.is_dir() and detected.type == "checkpoint":
        from impasto.engine import ModelFolderError, open_model_folder
        from impasto.engine.model_folder import is_refiner_folder, open_refiner_folder

        opener = open_refiner_folder if is_refiner_folder(ready) else open_model_folder
        try:
            opener(ready)  # the engine's own checks: components, external data paths
        except ModelFolderError as exc:
            raise InstallError(f"not a usable ONNX model: {exc}") from exc
        _split_for_deepcache(ready)
    return ready, detected


def _split_for_deepcache(folder: Path) -> None:
    """Write the UNet's DeepCache graphs now, so the first cached request does not wait."""
    from impasto.engine.deepcache import DeepCacheError, split_unet

    # A UNet that cannot be split still runs; a request asking for DeepCache is told why.
    with contextlib.suppress(DeepCacheError):
        split_unet(folder / "unet" / "model.onnx")


def finalize(job: StageJob, ready: Path, detected: Detected) -> Installed:
    """Move the checked model into the models dir with one rename: a folder as ``MODELS/ID``,
    a LoRA or embedding as ``MODELS/loras/ID.safetensors`` (``embeddings/``), where requests
    find them by name."""
    if ready.is_file() and detected.type in ADAPTER_FOLDERS:
        return _finalize_adapter(job, ready, detected)
    final = job.models_dir / job.model_id
    if final.exists():
        raise InstallError(f"{final} already exists; remove the model first")
    if ready.is_file():
        package = job.staging / "package"
        shutil.rmtree(package, ignore_errors=True)
        package.mkdir()
        ready = ready.replace(package / ready.name)
        ready_root, digest = package, sha256_of(ready)
        inner: Path | None = final / ready.name
    else:
        ready_root, digest, inner = ready, _tree_hash(ready), None
    size = sum(p.stat().st_size for p in ready_root.rglob("*") if p.is_file())
    job.models_dir.mkdir(parents=True, exist_ok=True)
    if os.stat(ready_root).st_dev == os.stat(job.models_dir).st_dev:
        ready_root.rename(final)
    else:
        # Another filesystem: copy beside the target under a dot-name, then rename in one step.
        partial = job.models_dir / f".{job.model_id}.{job.install_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(ready_root, partial)
        partial.rename(final)
    return Installed(inner or final, detected, size, digest)


def _finalize_adapter(job: StageJob, ready: Path, detected: Detected) -> Installed:
    folder = job.models_dir / ADAPTER_FOLDERS[detected.type]
    final = folder / f"{job.model_id}.safetensors"
    if final.exists():
        raise InstallError(f"{final} already exists; remove the model first")
    digest, size = sha256_of(ready), ready.stat().st_size
    folder.mkdir(parents=True, exist_ok=True)
    if os.stat(ready).st_dev == os.stat(folder).st_dev:
        ready.rename(final)
    else:  # another filesystem: copy beside the target under a dot-name, then rename
        partial = folder / f".{job.model_id}.{job.install_id}.partial"
        shutil.copyfile(ready, partial)
        partial.rename(final)
    return Installed(final, detected, size, digest)
