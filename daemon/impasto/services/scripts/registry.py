"""The selectable scripts, by A1111 title; adding one is one entry in ``SCRIPTS``."""

from __future__ import annotations

from impasto.services.scripts.base import Script
from impasto.services.scripts.loopback import Loopback
from impasto.services.scripts.prompt_matrix import PromptMatrix
from impasto.services.scripts.prompts_from_file import PromptsFromFile
from impasto.services.scripts.sd_upscale import SdUpscale
from impasto.services.scripts.xyz_plot import XyzPlot

# In A1111's order (its scripts/ folder, alphabetical by file name): /scripts lists them so.
SCRIPTS: list[Script] = [Loopback(), PromptMatrix(), PromptsFromFile(), SdUpscale(), XyzPlot()]


def scripts_for(is_img2img: bool) -> list[Script]:
    """The scripts one tab offers."""
    return [s for s in SCRIPTS if (s.img2img if is_img2img else s.txt2img)]


def find_script(name: str, is_img2img: bool) -> Script | None:
    """The script titled ``name`` (any case) in that tab, as A1111's script_name_to_index."""
    wanted = name.strip().lower()
    return next((s for s in scripts_for(is_img2img) if s.title.lower() == wanted), None)
