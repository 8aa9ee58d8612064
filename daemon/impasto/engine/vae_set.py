"""The VAEs a model's requests decode with: its own, or a swapped-in one (``vae_dir``), each as
exported or rewritten to wrap around for seamless tiling; opened on first use and kept."""

from __future__ import annotations

from pathlib import Path

from impasto.engine.model_folder import ModelFolder, open_vae_folder
from impasto.engine.providers import ProviderChoice
from impasto.engine.seamless import seamless_path
from impasto.engine.sessions import OrtModel
from impasto.engine.vae import Vae

UNTILED = 1 << 20
"""A seamless VAE decodes whole: blended tiles would each wrap around on their own."""


class VaeSet:
    """The model's own VAE (``own``) and the others requests have used."""

    def __init__(
        self,
        own: Vae,
        folder: ModelFolder,
        choice: ProviderChoice,
        tiles: tuple[int, int],
        cache_dir: Path | None,
    ) -> None:
        self.own = own
        self.folder = folder
        self.choice = choice
        self.tiles = tiles
        self.cache_dir = cache_dir
        self.opened: dict[tuple[Path | None, str], Vae] = {}

    def get(self, vae_dir: Path | None, seamless: str) -> Vae:
        """The VAE of ``vae_dir`` (None: the model's own), wrapping along ``seamless``'s axes
        ("x", "y", "xy"; "" none)."""
        key = (Path(vae_dir).resolve() if vae_dir is not None else None, seamless)
        if key == (None, ""):
            return self.own
        if key not in self.opened:
            self.opened[key] = self._open(*key)
        return self.opened[key]

    def _open(self, root: Path | None, seamless: str) -> Vae:
        if root is None:
            decoder, encoder = self.folder.vae_decoder, self.folder.vae_encoder
            scaling = self.folder.vae_scaling_factor
        else:
            found = open_vae_folder(root)
            decoder, encoder, scaling = found.decoder, found.encoder, found.scaling_factor
        if seamless:
            decoder = seamless_path(decoder, self.cache_dir, seamless)
            encoder = seamless_path(encoder, self.cache_dir, seamless) if encoder else None
        return Vae(
            OrtModel(decoder, self.choice),
            OrtModel(encoder, self.choice) if encoder else None,
            scaling,
            tile_latent=UNTILED if seamless else self.tiles[0],
            tile_overlap=self.tiles[1],
        )

    @property
    def models(self) -> list[OrtModel | None]:
        """The sessions opened besides the model's own."""
        return [m for vae in self.opened.values() for m in (vae.decoder, vae.encoder)]

    def clear(self) -> None:
        """Forget the opened VAEs (their sessions are closed by the pipeline)."""
        self.opened.clear()
