"""Convert a diffusers folder or a single-file .safetensors checkpoint to ONNX in a subprocess.

The exporter needs torch, diffusers and optimum (the ``convert`` extra); they are imported only
in the child process, so the daemon never loads them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from importlib.util import find_spec
from pathlib import Path

from impasto.services.downloads import InstallCancelled

CONVERT_MODULES = ("torch", "diffusers", "optimum.exporters.onnx")
INSTALL_HINT = "pip install 'impasto[convert]'"
COMPONENTS = ("text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder")


class ConversionError(Exception):
    """The export failed or cannot run here; the message says what to do."""


def missing_converter() -> str | None:
    """None when conversion can run, else a message naming the install command."""
    for name in CONVERT_MODULES:
        try:
            found = find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return (
                f"converting to ONNX needs {name.split('.')[0]}, which is not installed; "
                f"install the converter with: {INSTALL_HINT}"
            )
    return None


def convert(source: Path, output: Path, *, fp16: bool, cancel: threading.Event, log: Path) -> None:
    """Run the exporter on ``source`` into ``output``; a cancel kills the child process."""
    problem = missing_converter()
    if problem:
        raise ConversionError(problem)
    args = [sys.executable, "-m", "impasto.services.convert", str(source), str(output)]
    if fp16:
        args.append("--fp16")
    with log.open("ab") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
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
        raise ConversionError("the ONNX export failed: " + " | ".join(tail))


def _export(source: Path, output: Path, fp16: bool) -> None:
    from optimum.exporters.onnx import main_export

    with tempfile.TemporaryDirectory(prefix="impasto-convert-") as tmp:
        if source.is_file():
            # A single-file checkpoint becomes a diffusers folder first.
            from diffusers import StableDiffusionPipeline

            pipe = StableDiffusionPipeline.from_single_file(str(source))
            source = Path(tmp) / "diffusers"
            pipe.save_pretrained(source, safe_serialization=True)
            del pipe
        index = json.loads((source / "model_index.json").read_text(encoding="utf-8"))
        task = "inpainting" if "Inpaint" in str(index.get("_class_name", "")) else "text-to-image"
        main_export(
            str(source),
            output=output,
            task=task,
            library_name="diffusers",
            local_files_only=True,
            do_validation=False,
        )
    if fp16:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        for component in COMPONENTS:
            path = output / component / "model.onnx"
            if path.exists():
                model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=False)
                onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> int:
    """The child process: export SOURCE to OUTPUT (optionally fp16)."""
    parser = argparse.ArgumentParser(prog="python -m impasto.services.convert")
    parser.add_argument("source", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--fp16", action="store_true")
    args = parser.parse_args(argv)
    _export(args.source, args.output, args.fp16)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
