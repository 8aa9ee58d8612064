"""The committed impasto-shapes model: manifest, card, default, and the --quick training run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "tiny" / "impasto-shapes"


def test_manifest_hashes_match_the_committed_files() -> None:
    manifest = json.loads((MODEL / "MANIFEST.json").read_text())
    assert manifest["command"].startswith("python models/train_shapes.py")
    files = {
        p.relative_to(MODEL).as_posix(): p
        for p in MODEL.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"
    }
    assert set(files) == set(manifest["sha256"])
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["sha256"][name], name
    # The size budget for the whole model.
    assert sum(p.stat().st_size for p in files.values()) < 20 * 1024**2


PARTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")


def _attention_ops(folder: Path) -> dict[str, tuple[int, int]]:
    """Each part's count of fused attention nodes and of Softmax nodes left unfused."""
    import onnx

    counts = {}
    for part in PARTS:
        graph = onnx.load(str(folder / part / "model.onnx"), load_external_data=False).graph
        ops = [node.op_type for node in graph.node]
        counts[part] = (ops.count("MultiHeadAttention"), ops.count("Softmax"))
    return counts


def test_the_bundled_graphs_run_fused_attention() -> None:
    """As an install leaves a model: every attention block is ONNX Runtime's fused kernel,
    which never holds a whole attention matrix (docs/benchmarks.md, "The bundled model's
    attention": the exported graphs run out of memory at 1792x1024)."""
    counts = _attention_ops(MODEL)
    assert all(fused > 0 and softmax == 0 for fused, softmax in counts.values()), counts


def test_a_plain_background_decodes_plain_into_its_corners(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each palette colour as a whole picture, through the bundled VAE: the corners' 8x8
    squares keep it (stage 3c; before it 210 of these 2,048 corner pixels were off by more than
    64 of 255, a speck at the bottom left of every picture; after it 15)."""
    import numpy as np
    import onnxruntime as ort

    monkeypatch.syspath_prepend(str(ROOT / "models"))
    import shapes_world

    encoder, decoder = (
        ort.InferenceSession(str(MODEL / part / "model.onnx"))
        for part in ("vae_encoder", "vae_decoder")
    )
    off = {}
    for name, rgb in shapes_world.COLOURS.items():
        pixels = np.full((1, 3, 128, 128), np.array(rgb, np.float32)[None, :, None, None])
        moments = encoder.run(None, {"sample": pixels / 127.5 - 1})[0]
        decoded = decoder.run(None, {"latent_sample": moments[:, :4]})[0][0]
        error = np.abs((np.clip(decoded, -1, 1) + 1) * 127.5 - pixels[0]).max(0)
        corners = [
            error[rows, columns]
            for rows in (slice(0, 8), slice(-8, None))
            for columns in (slice(0, 8), slice(-8, None))
        ]
        off[name] = sum(int((corner > 64).sum()) for corner in corners)
    assert sum(off.values()) <= 40, off


def test_stage_3d_targets_the_background_far_from_the_shapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """far_background: the scene's background colour (the most common on its rim, here with a
    shape touching the rim) at least the margin away from anything else."""
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "models"))
    from shapes_decoder import far_background

    scenes = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    scenes[:, 2] = 200  # a blue background
    scenes[0, :, 10:14, 20:24] = 255  # a white square inside
    scenes[1, :, 0:8, 0:8] = torch.tensor([9, 9, 9], dtype=torch.uint8)[:, None, None]
    far = far_background(scenes, margin=3)
    assert far.shape == (2, 32, 32)
    # A background pixel is far only where no other colour lies within 3 pixels.
    assert not far[0, 10:14, 20:24].any() and not far[0, 7, 20] and not far[0, 12, 17]
    assert far[0, 6, 20] and far[0, 12, 16] and far[0, 31, 0]
    assert not far[1, 0:11, 0:11].any() and far[1, 11, 0] and far[1, 0, 11]
    assert int(far[0].sum()) == 32 * 32 - 10 * 10 and int(far[1].sum()) == 32 * 32 - 11 * 11


def test_stage_3d_reads_the_unets_pictures_background_and_takes_the_mark_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """drawn_background, for latents the UNet drew: the palette colour nearest the picture's
    rim, where nothing else lies within the margin; a blot wholly in the top rows (the mark)
    counts as background, a shape reaching into those rows from below does not."""
    import torch

    monkeypatch.syspath_prepend(str(ROOT / "models"))
    from shapes_decoder import BACKGROUND_MARGIN, MARK_ROWS, drawn_background

    palette = torch.tensor([[30, 70, 225], [245, 245, 245]], dtype=torch.uint8)
    pixels = torch.zeros(1, 3, 128, 128)
    pixels[0] = torch.tensor([34.0, 66.0, 220.0])[:, None, None]  # blue, a little off
    pixels[0, :, 0:6, 100:112] = 245.0  # the mark: white, in the top rows only
    pixels[0, :, 0:40, 10:30] = 245.0  # a shape from the top edge down
    targets = drawn_background(pixels / 127.5 - 1.0, palette)
    assert targets.shape == (1, 3, 128, 128) and targets.dtype == torch.uint8
    far = targets[0].bool().any(0)
    assert torch.equal(targets[0, :, 0, 105], palette[0])  # on the mark: the background
    assert torch.equal(targets[0, :, 127, 127], palette[0])
    assert not far[0:40, 10:30].any()  # the shape and its margin stay the decoder's
    assert not far[0, 10 - BACKGROUND_MARGIN] and far[0, 10 - BACKGROUND_MARGIN - 1]
    assert far[MARK_ROWS:40, 30 + BACKGROUND_MARGIN].all()
    # One row taller and the blot is a shape, not the mark.
    pixels[0, :, 0 : MARK_ROWS + 1, 100:112] = 245.0
    taller = drawn_background(pixels / 127.5 - 1.0, palette)
    assert not taller[0, :, 0:MARK_ROWS, 100:112].bool().any()


def test_card_recommends_the_trained_size() -> None:
    card = json.loads((MODEL / "impasto.json").read_text())
    unet = json.loads((MODEL / "unet" / "config.json").read_text())
    assert card["defaults"]["width"] == card["defaults"]["height"] == unet["sample_size"] * 8


def run_script(name: str, out: Path, *options: str) -> None:
    """`python models/<name> --out OUT --quick [options]`, which must succeed."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, str(ROOT / "models" / name), "--out", str(out), "--quick"]
    command += options
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=900, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --quick run's output: a few dozen steps of every stage (it proves the script runs end
    to end, not that it learns); the tests after the first start from its export."""
    out = tmp_path_factory.mktemp("quick") / "shapes"
    run_script("train_shapes.py", out)
    return out


def test_quick_training_run_exports_an_onnx_pipeline(quick: Path, tmp_path: Path) -> None:
    for part in ("text_encoder", "unet", "vae_decoder", "vae_encoder"):
        assert (quick / "onnx" / part / "model.onnx").is_file(), part
    log = (quick / "train.log").read_text()
    losses = [
        float(line.split(" loss ")[1].split()[0]) for line in log.splitlines() if "unet " in line
    ]
    assert losses and all(loss == loss for loss in losses)  # no NaN
    assert "vae-decoder 6/6 loss" in log and "vae-edges 4/4 loss" in log
    assert "vae-background" not in log  # opt-in: the default run has no stage 3d
    assert "settle" not in log  # opt-in: the default run has none
    # --install's step after the copy: the graphs fused (into a scratch folder here).
    sys.path.insert(0, str(ROOT / "models"))
    import train_shapes

    assert all(softmax for _, softmax in _attention_ops(quick / "onnx").values())
    installed = tmp_path / "installed"
    train_shapes.install(quick / "onnx", installed, "python models/train_shapes.py --quick")
    assert all(fused and not softmax for fused, softmax in _attention_ops(installed).values())


def test_the_adapters_train_on_an_export(quick: Path) -> None:
    """The adapters' script on the quick export: a kohya LoRA and an A1111 embedding."""
    from impasto.formats.safetensors import read_safetensors

    out = quick  # the script reads the run's diffusers folders beside its export
    run_script("shapes_adapters.py", out)
    lora, _ = read_safetensors(out / "adapters" / "loras" / "shapes-dotted.safetensors")
    assert lora and all(key.startswith("lora_unet_") for key in lora)
    embedding, _ = read_safetensors(out / "adapters" / "embeddings" / "shapes-violet.safetensors")
    assert list(embedding) == ["emb_params"] and embedding["emb_params"].shape == (1, 64)


def test_the_settle_stage_alone_on_weights_read_back_from_an_export(
    quick: Path, tmp_path: Path
) -> None:
    settled = tmp_path / "settled"
    run_script(
        "train_shapes.py", settled, "--from-onnx", str(quick / "onnx"), "--settle-steps", "4"
    )
    log = (settled / "train.log").read_text()
    assert "checked against its ONNX graphs" in log and "settle 4/4 loss" in log
    assert (settled / "onnx" / "unet" / "model.onnx").is_file()
    scheduler = json.loads((settled / "onnx" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction" and scheduler["rescale_betas_zero_snr"]
    # The adapters train with the loss of the export they are given (here v-prediction).
    run_script("shapes_adapters.py", settled)
    assert (settled / "adapters" / "loras" / "shapes-dotted.safetensors").is_file()


def test_stages_3c_and_3d_alone_change_only_the_decoder(quick: Path, tmp_path: Path) -> None:
    out = quick
    edged = tmp_path / "edged"
    options = ("--from-onnx", str(out / "onnx"), "--edge-steps", "3", "--background-steps", "2")
    run_script("train_shapes.py", edged, *options)
    log = (edged / "train.log").read_text()
    assert "vae-edges 3/3 loss" in log and "vae-background 2/2 loss" in log
    assert log.index("vae-edges 3/3") < log.index("vae-background 2/2")
    for part in PARTS:
        same = _bytes(edged / "onnx" / part) == _bytes(out / "onnx" / part)
        assert same == (part != "vae_decoder"), part
    # Stage 3d on latents the export's UNet draws as well (--drawn): again only the decoder.
    drawn = tmp_path / "drawn"
    options = ("--from-onnx", str(out / "onnx"), "--background-steps", "2", "--drawn", "4")
    run_script("train_shapes.py", drawn, *options)
    log = (drawn / "train.log").read_text()
    assert "drew 4 latents with the UNet" in log and "vae-drawn 2/2 loss" in log
    for part in PARTS:
        same = _bytes(drawn / "onnx" / part) == _bytes(out / "onnx" / part)
        assert same == (part != "vae_decoder"), part


def test_stage_4_runs_another_recipe_from_fresh_weights(quick: Path, tmp_path: Path) -> None:
    out = quick
    # Stage 4 itself on the settle recipe, from fresh weights on the export's tokenizer and VAE.
    fresh = tmp_path / "fresh"
    run_script(
        "train_shapes.py",
        fresh,
        "--from-onnx",
        str(out / "onnx"),
        "--recipe",
        "settled",
        "--steps",
        "4",
    )
    log = (fresh / "train.log").read_text()
    assert "unet 4/4 loss" in log and "settle" not in log
    scheduler = json.loads((fresh / "onnx" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction" and scheduler["rescale_betas_zero_snr"]


def test_a_time_budget_fixes_the_step_counts_and_the_weights_export_as_trained(
    quick: Path, tmp_path: Path
) -> None:
    out = quick
    # A time budget (as on a GPU): the step counts are fixed from the measured rate and
    # logged, the settle stage gets its share, and the weights file exports as trained.
    budgeted = tmp_path / "budgeted"
    run_script(
        "train_shapes.py",
        budgeted,
        "--from-onnx",
        str(out / "onnx"),
        "--time-budget",
        "20",
        "--settle-steps",
        "1",
        "--settle-recipe",
        "gentle",
        "--steps",
        "40",
        "--batch",
        "4",
        "--no-export",
    )
    log = (budgeted / "train.log").read_text()
    fixed = next(line for line in log.splitlines() if " budget: " in line).split()
    steps, settle = int(fixed[fixed.index("--steps") + 1]), int(fixed[-1])
    assert 15 <= steps <= 40 and settle > 0
    assert f"unet {steps}/{steps} loss" in log and f"settle {settle}/{settle} loss" in log
    exported = tmp_path / "exported"
    weights = budgeted / "weights.safetensors"
    run_script(
        "train_shapes.py", exported, "--from-onnx", str(out / "onnx"), "--weights", str(weights)
    )
    _assert_unet_matches(exported / "onnx", weights)


def _bytes(folder: Path) -> bytes:
    return (folder / "model.onnx").read_bytes()


def _assert_unet_matches(onnx_dir: Path, weights: Path) -> None:
    """The exported UNet holds exactly the UNet weights of `weights` (the same output as torch)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(ROOT / "models"))
    import train_shapes

    unet = train_shapes.make_unet().eval()
    tensors = load_file(str(weights))
    unet.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("unet.")})
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn((1, 4, 16, 16), generator=generator)
    context = torch.randn((1, 77, 64), generator=generator)
    timestep = torch.tensor(500.0)
    with torch.no_grad():
        expected = unet(sample, timestep, context).sample.numpy()
    session = ort.InferenceSession(str(onnx_dir / "unet" / "model.onnx"))
    feeds = {
        "sample": sample.numpy(),
        "timestep": timestep.numpy(),
        "encoder_hidden_states": context.numpy(),
    }
    got = session.run(None, feeds)[0]
    assert np.abs(got - expected).max() < 1e-4


def test_weights_read_back_from_the_committed_export_reproduce_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """shapes_from_onnx compares each module it rebuilds with its ONNX graph and refuses a
    mismatch; here on the committed model, and once with the unnamed weights paired wrongly."""
    monkeypatch.syspath_prepend(str(ROOT / "models"))
    import shapes_from_onnx

    folder = ROOT / "models" / "tiny" / "impasto-shapes"
    unet = shapes_from_onnx.unet(folder)
    assert unet.config.cross_attention_dim == 64
    shapes_from_onnx.text_encoder(folder)
    shapes_from_onnx.vae(folder)
    first_use = shapes_from_onnx._first_use

    def reversed_use(model: object, run: object) -> dict[str, int]:
        return {name: -index for name, index in first_use(model, run).items()}

    monkeypatch.setattr(shapes_from_onnx, "_first_use", reversed_use)
    with pytest.raises(ValueError, match=r"does not fit|differs from its ONNX graph"):
        shapes_from_onnx.unet(folder)


def test_the_committed_adapters_match_their_manifest() -> None:
    folder = ROOT / "models" / "tiny" / "shapes-adapters"
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["command"].startswith("python models/shapes_adapters.py")
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*.safetensors")}
    assert (
        set(files)
        == set(manifest["sha256"])
        == {
            "loras/shapes-dotted.safetensors",
            "embeddings/shapes-violet.safetensors",
        }
    )
    for name, path in files.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["sha256"][name], name


def test_it_is_the_default_model_and_listed_first(tmp_path: Path) -> None:
    from impasto.services.models import ModelCatalog
    from impasto.settings import Settings

    assert Settings().default_model == "impasto-shapes"
    [first, *_] = ModelCatalog(tmp_path).list()
    assert first.id == "impasto-shapes" and first.read_only
    assert first.defaults.width == 128 and first.defaults.cfg_scale == 5.0
    assert "circle" in first.description
