"""Convert a diffusers folder or a single-file .safetensors checkpoint to ONNX in a subprocess.

The exporter needs torch, diffusers and optimum (the ``convert`` extra); they are imported only
in the child process, so the daemon never loads them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from impasto.engine.onnx_external import read_external_data_locations
from impasto.resources import compiled, source_checkout
from impasto.services.detect import FAST_DECODER_DIR, is_fast_decoder_folder
from impasto.services.downloads import InstallCancelled
from impasto.services.safety import safetensors_header
from impasto.worker.processes import CONVERT_WORD, child_command

CONVERT_MODULES = ("torch", "diffusers", "optimum.exporters.onnx")
WHEEL_HINT = "pip install 'impasto[convert]'"
COMPONENTS = ("text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder")
# ONNX files are protobufs, which cannot pass 2 GB; bigger weights go to model.onnx_data.
EXTERNAL_DATA_ABOVE = 1536 * 1024**2
CPU_PROVIDER = "CPUExecutionProvider"


class ConversionError(Exception):
    """The export failed or cannot run here; the message says what to do."""


def _importable(name: str) -> bool:
    """Whether module ``name`` can be imported here (without importing it)."""
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def converter_hint() -> str:
    """How to get the converter (the ``convert`` extra) for the way this Impasto is installed:
    a source checkout installs it into its own environment, a wheel by pip; the single binary
    cannot take it."""
    if compiled():
        return (
            "the single binary cannot convert; install a model's ONNX build instead "
            f"(impasto pull --list), or the Python package with its converter: {WHEEL_HINT}"
        )
    if source_checkout():
        return "in the Impasto checkout run make convert (pip install -e '.[convert]' into .venv)"
    return f"{WHEEL_HINT} (into the daemon's Python environment)"


def missing_converter() -> str | None:
    """None when conversion can run, else a message saying how to install it."""
    for name in CONVERT_MODULES:
        if not _importable(name):
            return (
                f"converting to ONNX needs {name.split('.')[0]}, which is not installed; "
                f"install the converter: {converter_hint()}"
            )
    return None


def missing_fp16_converter() -> str | None:
    """None when an fp32 ONNX folder can be turned to fp16 here, else why not (ONNX Runtime's
    float16 tool needs the ``onnx`` package, a part of the ``convert`` extra)."""
    if compiled():
        return "the single binary cannot turn weights to fp16; install the Python package for it"
    return (
        None if _importable("onnx") else f"turning weights to fp16 needs onnx: {converter_hint()}"
    )


def _run_child(args: list[str], *, cancel: threading.Event, log: Path, env: dict[str, str]) -> None:
    """Run one converter child process; a cancel kills it, a failure quotes its log's tail."""
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [*child_command(CONVERT_WORD, "impasto.services.convert"), *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        while True:
            try:
                code = process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if cancel.is_set():
                    process.kill()
                    process.wait()
                    raise InstallCancelled("cancelled") from None
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise ConversionError(f"the ONNX {args[0]} step failed: " + " | ".join(tail))


def convert(
    source: Path,
    output: Path,
    *,
    cancel: threading.Event,
    log: Path,
    config: str = "",
    env: dict[str, str] | None = None,
) -> None:
    """Export ``source`` (a diffusers folder or a single-file checkpoint) to ONNX in ``output``.

    ``config`` names the diffusers-format repo id or folder whose configs describe a single-file
    checkpoint; without it diffusers picks the base model's repo from the weights and fetches
    its configs from the hub (``env`` carries HF_ENDPOINT and HF_TOKEN to the child).
    """
    problem = missing_converter()
    if problem:
        raise ConversionError(problem)
    args = ["export", str(source), str(output)]
    if config:
        args += ["--config", config]
    _run_child(args, cancel=cancel, log=log, env=env or {})


def optimize_fp16(folder: Path, *, cancel: threading.Event, log: Path) -> None:
    """Turn an exported ONNX pipeline's weights and math to fp16, for GPU providers."""
    problem = missing_converter()
    if problem:
        raise ConversionError(problem)
    _run_child(["fp16", str(folder)], cancel=cancel, log=log, env={})


def fuse_graphs(folder: Path, *, cancel: threading.Event, log: Path, provider: str) -> None:
    """Fuse attention in each graph of an ONNX pipeline folder, checked against the original,
    and give an SD 1.x/2.x text encoder the per-layer outputs clip skip reads."""
    _run_child(["fuse", str(folder), "--provider", provider], cancel=cancel, log=log, env={})


def quantize_int8(folder: Path, *, cancel: threading.Event, log: Path) -> None:
    """Replace an ONNX pipeline's fp32 UNet with its dynamic-int8 quantisation."""
    _run_child(["int8", str(folder)], cancel=cancel, log=log, env={})


def single_file_pipeline(path: Path) -> str:
    """The diffusers pipeline class for a single-file checkpoint, from its tensor names."""
    header = safetensors_header(path)
    xl = any(k.startswith("conditioner.embedders.1.") for k in header)
    first = header.get("model.diffusion_model.input_blocks.0.0.weight")
    shape = first.get("shape") if isinstance(first, dict) else None
    inpaint = bool(shape and len(shape) > 1 and shape[1] == 9)
    if xl:
        return "StableDiffusionXLInpaintPipeline" if inpaint else "StableDiffusionXLPipeline"
    return "StableDiffusionInpaintPipeline" if inpaint else "StableDiffusionPipeline"


SIDECAR_SUFFIX = ".yaml"
"""AUTOMATIC1111's original-config file beside a checkpoint: ``model.yaml`` for
``model.safetensors``."""


def single_file_scheduler(path: Path) -> dict[str, Any]:
    """Scheduler settings a single-file checkpoint states outside diffusers' configs.

    The marker tensors ComfyUI and Forge read (``v_pred``: v-prediction; ``ztsnr``: zero
    terminal SNR, sampled from t=999 on trailing timesteps), and AUTOMATIC1111's ``.yaml``
    beside the file (``model.params.parameterization: "v"``). Empty when it states none.
    """
    import yaml

    keys = set(safetensors_header(path))
    settings: dict[str, Any] = {}
    sidecar = path.with_suffix(SIDECAR_SUFFIX)
    if sidecar.is_file():
        original = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
        params = (original.get("model") or {}).get("params") or {}
        if params.get("parameterization") == "v":
            settings["prediction_type"] = "v_prediction"
    if "v_pred" in keys:
        settings["prediction_type"] = "v_prediction"
    if "ztsnr" in keys:
        settings.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    return settings


def _with_scheduler_settings(pipe: Any, settings: dict[str, Any]) -> None:
    import diffusers

    # SD 1.5's PNDM has no zero-SNR rescaling; DDIM does, as diffusers' zero-SNR pipelines use.
    kind = diffusers.DDIMScheduler if settings.get("rescale_betas_zero_snr") else None
    kind = kind or type(pipe.scheduler)
    pipe.scheduler = kind.from_config(pipe.scheduler.config, **settings)


def _export(source: Path, output: Path, config: str) -> None:
    if source.is_dir() and is_fast_decoder_folder(source):
        _export_fast_decoder(source, output)
        return
    import diffusers
    from optimum.exporters.onnx import onnx_export_from_model

    if source.is_file():
        # A single-file checkpoint: the original-layout weights, with diffusers' configs.
        pipeline_class = getattr(diffusers, single_file_pipeline(source))
        kwargs = {"config": config} if config else {}
        pipe = pipeline_class.from_single_file(str(source), **kwargs)
        settings = single_file_scheduler(source)
        if settings:
            _with_scheduler_settings(pipe, settings)
    else:
        pipe = diffusers.DiffusionPipeline.from_pretrained(str(source), local_files_only=True)
    with_hidden_states(pipe)
    task = "inpainting" if "Inpaint" in type(pipe).__name__ else "text-to-image"
    onnx_export_from_model(pipe, output, task=task, do_validation=False)


def with_hidden_states(pipe: Any) -> None:
    """Export every text encoder layer's output (``hidden_states.N``), which clip skip reads.

    optimum does this for SDXL's encoders only; for SD 1.x and 2.x it exports the last layer
    alone, so AUTOMATIC1111's "Clip skip" (very common with SD 1.5 fine-tunes) could not work
    on a converted model. The extra outputs cost nothing when unread.
    """
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is None:
            continue
        encoder.config.output_hidden_states = True
        text_model = getattr(encoder, "text_model", None)
        if text_model is not None:
            text_model.config.output_hidden_states = True


def export_fast_decoder(model: object, output: Path) -> Path:
    """Export an AutoencoderTiny's decoder to ``output/taesd_decoder/model.onnx``.

    The graph takes UNet-space latents as ``latent_sample`` and returns RGB in [-1, 1] as
    ``sample`` (what ``AutoencoderTiny.decode`` computes), with dynamic batch and size.
    """
    import torch

    vae: Any = model
    folder = output / FAST_DECODER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    latents = torch.zeros(1, vae.config.latent_channels, 8, 8)
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        torch.onnx.export(
            vae.decoder.eval(),
            (latents,),
            str(folder / "model.onnx"),
            input_names=["latent_sample"],
            output_names=["sample"],
            dynamic_axes={"latent_sample": axes, "sample": axes},
            opset_version=17,
            dynamo=False,
        )
    config = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    config["_class_name"] = "AutoencoderTiny"
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder / "model.onnx"


def _export_fast_decoder(source: Path, output: Path) -> None:
    from diffusers import AutoencoderTiny

    export_fast_decoder(AutoencoderTiny.from_pretrained(str(source)), output)


def _fp16(folder: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    for component in COMPONENTS:
        path = folder / component / "model.onnx"
        if not path.exists():
            continue
        old_data = set(read_external_data_locations(path))
        # A path (not a loaded model) lets it infer shapes of models over protobuf's 2 GB.
        model = convert_float_to_float16(str(path), keep_io_types=False)
        onnx.load_external_data_for_model(model, str(path.parent))
        for name in old_data:
            (path.parent / name).unlink(missing_ok=True)
        large = model.ByteSize() > EXTERNAL_DATA_ABOVE
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=large,
            all_tensors_to_one_file=True,
            location="model.onnx_data",
        )


def main(argv: list[str] | None = None) -> int:
    """The child process: ``export SOURCE OUTPUT``, or ``fp16|fuse|int8 FOLDER``."""
    parser = argparse.ArgumentParser(prog=f"impasto {CONVERT_WORD}")
    steps = parser.add_subparsers(dest="step", required=True)
    export = steps.add_parser("export", help="SOURCE (diffusers folder or checkpoint) to ONNX")
    export.add_argument("source", type=Path)
    export.add_argument("output", type=Path)
    export.add_argument("--config", default="", help="diffusers repo id or folder of configs")
    fp16 = steps.add_parser("fp16", help="an exported ONNX folder's weights to fp16, in place")
    fp16.add_argument("folder", type=Path)
    fuse = steps.add_parser(
        "fuse", help="fuse attention in an ONNX folder's graphs; expose clip skip's hidden states"
    )
    fuse.add_argument("folder", type=Path)
    fuse.add_argument("--provider", default="CPUExecutionProvider", help="to check outputs on")
    int8 = steps.add_parser("int8", help="an ONNX folder's UNet to dynamic int8, in place")
    int8.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.step == "export":
        _export(args.source, args.output, args.config)
    elif args.step == "fp16":
        _fp16(args.folder)
    elif args.step == "fuse":
        from impasto.services.optimize import expose_hidden_states, fuse_folder

        providers = list(dict.fromkeys([args.provider or "CPUExecutionProvider", CPU_PROVIDER]))
        expose_hidden_states(args.folder, providers)
        fuse_folder(args.folder, providers)
    else:
        from impasto.services.optimize import int8_folder

        int8_folder(args.folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
