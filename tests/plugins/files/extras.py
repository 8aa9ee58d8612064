"""A plugin with a sampler, a model loader and a route, to exercise those hooks for real."""

from pathlib import Path

from litestar import get
from PIL import Image

from impasto.engine import GeneratedImage, load_pipeline
from impasto.engine.schedulers.euler import EulerSampler
from impasto.plugins import hookimpl

MARKER = "claimed-by-extras.txt"


class PluginEuler(EulerSampler):
    """Euler under another id, as a plugin would ship a new sampler, with the two-argument
    constructor of a plugin written before samplers took an ``eta``."""

    def __init__(self, config, schedule="default"):
        super().__init__(config, schedule)


class Painted:
    """Wraps the engine's pipeline and paints every image the colour named in the marker."""

    def __init__(self, model_dir: Path) -> None:
        self.inner = load_pipeline(model_dir)
        self.colour = tuple(int(v) for v in (model_dir / MARKER).read_text().split(","))

    def generate(self, params, progress=None, cancel=None):
        images = self.inner.generate(params, progress=progress, cancel=cancel)
        return [GeneratedImage(Image.new("RGB", g.image.size, self.colour), g.seed) for g in images]

    def close(self):
        self.inner.close()


@hookimpl
def register_samplers():
    return [
        ("plugin_euler", PluginEuler, "Plugin Euler"),
        (
            "plugin_euler_k",
            PluginEuler,
            "Plugin Euler K",
            {"recommended_schedule": "karras", "a1111_schedule": "uniform"},
        ),
    ]


@hookimpl
def model_loader(model_dir, context):
    folder = Path(model_dir)
    return Painted(folder) if (folder / MARKER).is_file() else None


@get("/ping", sync_to_thread=False)
def ping() -> dict[str, str]:
    return {"pong": "extras"}


@get("/exit", sync_to_thread=True)
def exit_route() -> dict[str, str]:
    raise SystemExit(3)  # what an argparse inside a route does


@hookimpl
def register_routes():
    return [ping, exit_route]
