"""kohya's SDXL UNet names (Stability's "sgm" layout) mapped to the diffusers module paths.

kohya's sd-scripts train SDXL on the original UNet, so its LoRAs name UNet modules
``input_blocks_4_1_transformer_blocks_0_attn1_to_k`` where the diffusers export (and the ONNX
graph's node names) say ``down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_k``.
``input_blocks_N_M``: N counts the UNet's input layers (0 is ``conv_in``; then, per down block,
``layers_per_block`` layers and a downsampler), M is the resnet (0) or attention (1) of that
layer. ``output_blocks_N_M`` likewise per up block, with one layer more and the upsampler as
the last M. The layout (layers per block, which up blocks have attention) is read from the
graph's own module names, so no config is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Inner names of sgm's ResBlock and of its embedding MLPs, as diffusers names them.
_INNER = (
    ("in_layers_2", "conv1"),
    ("out_layers_3", "conv2"),
    ("emb_layers_1", "time_emb_proj"),
    ("skip_connection", "conv_shortcut"),
)
_TOP = {
    "time_embed_0": "time_embedding_linear_1",
    "time_embed_2": "time_embedding_linear_2",
    "label_emb_0_0": "add_embedding_linear_1",
    "label_emb_0_2": "add_embedding_linear_2",
    "input_blocks_0_0": "conv_in",
    "out_2": "conv_out",
}
_MIDDLE = {"0": "resnets_0", "1": "attentions_0", "2": "resnets_1"}
_BLOCK = re.compile(r"(input_blocks|output_blocks)_(\d+)_(\d+)_?(.*)")
_MID = re.compile(r"middle_block_(\d+)_?(.*)")


@dataclass(frozen=True)
class UNetLayout:
    """What the mapping needs to know of a UNet: layers per down block, attended up blocks."""

    layers_per_block: int
    up_attention: frozenset[int]

    @classmethod
    def of(cls, modules: Iterable[str]) -> UNetLayout:
        """Read the layout from a graph's underscored module paths."""
        resnets, attended = set(), set()
        for module in modules:
            if found := re.match(r"down_blocks_0_resnets_(\d+)_", module):
                resnets.add(int(found.group(1)))
            if found := re.match(r"up_blocks_(\d+)_attentions_", module):
                attended.add(int(found.group(1)))
        return cls(max(resnets, default=0) + 1, frozenset(attended))


def _inner(rest: str) -> str:
    for sgm, diffusers in _INNER:
        if rest.startswith(sgm):
            return diffusers + rest[len(sgm) :]
    return rest


def sgm_to_diffusers(module: str, layout: UNetLayout) -> str | None:
    """The diffusers (underscored) path of an sgm UNet module, or None if it is not sgm."""
    for sgm, diffusers in _TOP.items():
        if module == sgm or module.startswith(sgm + "_"):
            return diffusers + module[len(sgm) :]
    if found := _MID.fullmatch(module):
        part, rest = _MIDDLE.get(found.group(1)), found.group(2)
        return f"mid_block_{part}_{_inner(rest)}".rstrip("_") if part else None
    found = _BLOCK.fullmatch(module)
    if found is None:
        return None
    kind, layer, inner, rest = found.group(1), int(found.group(2)), found.group(3), found.group(4)
    per_block = layout.layers_per_block + 1
    if kind == "input_blocks":
        block, index = divmod(layer - 1, per_block)
        if index == layout.layers_per_block:  # the downsampler: input_blocks_N_0_op
            return f"down_blocks_{block}_downsamplers_0_{rest.replace('op', 'conv', 1)}"
        part = "resnets" if inner == "0" else "attentions"
        return f"down_blocks_{block}_{part}_{index}_{_inner(rest)}".rstrip("_")
    block, index = divmod(layer, per_block)
    attended = block in layout.up_attention
    if inner == "0":
        return f"up_blocks_{block}_resnets_{index}_{_inner(rest)}".rstrip("_")
    if inner == "1" and attended:
        return f"up_blocks_{block}_attentions_{index}_{rest}".rstrip("_")
    return f"up_blocks_{block}_upsamplers_0_{rest}".rstrip("_")
