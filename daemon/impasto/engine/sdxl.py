"""SDXL conditioning: two CLIP text encoders, the second's pooled embedding, and time ids.

As diffusers does: each encoder's penultimate hidden state (``hidden_states[-2]``, no final
layer norm) is concatenated along the feature axis; ``text_embeds`` of the second encoder is the
pooled embedding; ``time_ids`` are (original size, crop top-left, target size). Prompts over 75
tokens are chunked AUTOMATIC1111-style; the pooled embedding comes from the first chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from impasto.engine.text_encoder import PromptEncoder, apply_emphasis, group_rows, prompt_groups
from impasto.engine.tokenizer import CONTEXT_LENGTH


@dataclass
class Conditioning:
    """The UNet's text inputs for one prompt (a row per part of an ``AND`` prompt): hidden
    states and any extra named inputs."""

    hidden: np.ndarray  # [parts, tokens, width]
    extra: dict[str, np.ndarray]  # e.g. text_embeds [parts, P], time_ids [parts, 6]


# diffusers' StableDiffusionXLImg2ImgPipeline defaults for a refiner's aesthetic-score time id.
AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5


def time_ids(width: int, height: int) -> np.ndarray:
    """[1, 6]: original size, crop (0, 0) and target size, each (height, width)."""
    return np.asarray([[height, width, 0, 0, height, width]], dtype=np.float32)


def aesthetic_time_ids(width: int, height: int, score: float) -> np.ndarray:
    """[1, 5]: a refiner's original size, crop (0, 0) and aesthetic score."""
    return np.asarray([[height, width, 0, 0, score]], dtype=np.float32)


class SdxlPromptEncoder:
    """Both SDXL text encoders over the same chunks; ``zero_negative`` follows the folder's
    ``force_zeros_for_empty_prompt`` (an empty negative prompt becomes zeros).

    A refiner has no first encoder (``first`` None) and ``aesthetic`` time ids.
    """

    def __init__(
        self,
        first: PromptEncoder | None,
        second: PromptEncoder,
        zero_negative: bool,
        aesthetic: bool = False,
    ) -> None:
        self.encoders = (second,) if first is None else (first, second)
        self.second = second
        self.zero_negative = zero_negative
        self.aesthetic = aesthetic
        self._pooled = second.model.output_index(("text_embeds",))

    def _time_ids(self, width: int, height: int, negative: bool) -> np.ndarray:
        if not self.aesthetic:
            return time_ids(width, height)
        score = NEGATIVE_AESTHETIC_SCORE if negative else AESTHETIC_SCORE
        return aesthetic_time_ids(width, height, score)

    def encode_pair(
        self, prompt: str, negative: str | None, width: int, height: int, clip_skip: int = 1
    ) -> tuple[Conditioning, Conditioning | None]:
        """Cond and (unless ``negative`` is None) uncond conditioning for one request."""
        return self.encode([prompt], negative, width, height, clip_skip)

    def encode(
        self,
        prompts: Sequence[str],
        negative: str | None,
        width: int,
        height: int,
        clip_skip: int = 1,
    ) -> tuple[Conditioning, Conditioning | None]:
        """Cond (one row per prompt: the parts of an ``AND`` prompt) and (unless ``negative``
        is None) uncond conditioning."""
        zeros = negative is not None and self.zero_negative and not negative.strip()
        lead = self.encoders[0]
        groups = prompt_groups(lead.tokenizer, prompts, negative, lead.comma_id)
        count = len(groups[0])
        hidden_parts, weights = [], None
        pooled = None
        for encoder in self.encoders:
            rows, weights = group_rows(encoder.tokenizer, groups)
            # SDXL already uses the penultimate layer; clip skip n moves n - 1 further back.
            output = encoder.hidden_state_output(clip_skip + 1)
            hidden_parts.append(encoder.encode_ids(rows, output))
            if encoder is self.second:
                pooled = encoder.encode_ids(rows, self._pooled)
        assert weights is not None and pooled is not None
        hidden = apply_emphasis(np.concatenate(hidden_parts, axis=-1), weights)
        per_group = hidden.reshape(len(groups), count * CONTEXT_LENGTH, hidden.shape[-1])
        k = len(prompts)
        # The pooled embedding of each group is its first chunk's.
        firsts = pooled[::count]
        ids = np.repeat(self._time_ids(width, height, negative=False), k, axis=0)
        cond = Conditioning(per_group[:k], {"text_embeds": firsts[:k], "time_ids": ids})
        ids = self._time_ids(width, height, negative=True)
        if negative is None:
            return cond, None
        if zeros:
            uncond = Conditioning(
                np.zeros_like(per_group[k:]),
                {"text_embeds": np.zeros_like(firsts[k:]), "time_ids": ids},
            )
        else:
            uncond = Conditioning(per_group[k:], {"text_embeds": firsts[k:], "time_ids": ids})
        return cond, uncond
