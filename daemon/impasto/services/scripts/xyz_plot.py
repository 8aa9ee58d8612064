"""AUTOMATIC1111's "X/Y/Z plot": one job per cell, a grid per Z value, the Z grids side by side.

Arguments, in A1111's order: X type, X values, X values (dropdown list), the same for Y and Z,
Draw legend, Include Sub Images, Include Sub Grids, Keep -1 for seeds, Grid margins (px),
Use text inputs instead of dropdowns, Use raw text lines.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

import msgspec
from PIL import Image

from impasto.services.compat import ResultImage
from impasto.services.errors import FieldError
from impasto.services.scripts.base import (
    FIELD,
    ScriptArg,
    ScriptContext,
    ScriptOutput,
    composed,
    decode,
    infotext_with,
    prompt_of,
)
from impasto.services.scripts.grid import Label, annotate, blank, cell_size, image_grid
from impasto.services.scripts.xyz_axes import Axis, axes_for, supported_labels
from impasto.services.scripts.xyz_values import axis_values
from impasto.wire import GenerateRequest

MAX_CELLS = 400
MAX_GRID_MEGAPIXELS = 200
TITLE = "X/Y/Z plot"


class XyzPlot:
    title = TITLE
    txt2img = True
    img2img = True

    def arguments(self, is_img2img: bool) -> list[ScriptArg]:
        labels = tuple(axis.label for axis in axes_for(is_img2img))
        args: list[ScriptArg] = []
        for name, default in (("X", labels[1]), ("Y", labels[0]), ("Z", labels[0])):
            args += [
                ScriptArg(f"{name} type", "index", default, choices=labels),
                ScriptArg(f"{name} values", "str", ""),
                ScriptArg(f"{name} values", "list", None),
            ]
        return [
            *args,
            ScriptArg("Draw legend", "bool", True),
            ScriptArg("Include Sub Images", "bool", False),
            ScriptArg("Include Sub Grids", "bool", False),
            ScriptArg("Keep -1 for seeds", "bool", False),
            ScriptArg("Grid margins (px)", "int", 0, minimum=0, maximum=500, step=2),
            ScriptArg("Use text inputs instead of dropdowns", "bool", False),
            ScriptArg("Use raw text lines", "bool", False),
        ]

    async def run(self, ctx: ScriptContext, args: list[Any]) -> ScriptOutput:
        draw_legend, lone_images, sub_grids, keep_random, margin, csv_mode, raw_mode = args[9:]
        axes = axes_for(ctx.is_img2img)
        chosen: list[tuple[Axis, list[Any], str]] = []
        for offset, which in zip((0, 3, 6), "XYZ", strict=True):
            axis = axes[args[offset]]
            if axis.apply is None:
                allowed = ", ".join(supported_labels(ctx.is_img2img))
                raise FieldError(
                    FIELD,
                    f"{which} type {axis.label!r} is not supported by Impasto; use: {allowed}",
                )
            text, dropdown = args[offset + 1], args[offset + 2]
            values = axis_values(
                axis, text, dropdown, csv_mode=csv_mode, raw_mode=raw_mode, which=which
            )
            if not keep_random and axis.label == "Seed":
                values = [ctx.random_seed() if v == -1 else v for v in values]
            shown = ", ".join(dropdown) if axis.choices and not csv_mode and dropdown else text
            chosen.append((axis, values, shown))
        (_, xs, x_text), (_, ys, y_text), (_, zs, z_text) = chosen
        count = len(xs) * len(ys) * len(zs)
        if count > MAX_CELLS:
            raise FieldError(FIELD, f"the plot has {count} cells; at most {MAX_CELLS}")

        base = ctx.base
        if not keep_random and base.seed == -1:
            base = msgspec.structs.replace(base, seed=ctx.random_seed())
        # Applying a checkpoint value reads the models folder: off the event loop.
        cells = await asyncio.to_thread(_cells, ctx, chosen, base)
        keys = list(cells)
        flat = [request for key in keys for request in cells[key]]
        results = await ctx.generate(flat)
        per_cell: dict[tuple[int, int, int], list[ResultImage]] = {}
        position = 0
        for key in keys:
            size = len(cells[key])
            per_cell[key] = [
                image for images in results[position : position + size] for image in images
            ]
            position += size

        def compose() -> ScriptOutput:
            return _compose(
                ctx,
                chosen,
                per_cell,
                draw_legend,
                lone_images,
                sub_grids,
                margin,
                {"X": x_text, "Y": y_text, "Z": z_text},
                keep_random,
            )

        return await asyncio.to_thread(compose)


def _cells(
    ctx: ScriptContext, chosen: list[tuple[Axis, list[Any], str]], base: GenerateRequest
) -> dict[tuple[int, int, int], list[GenerateRequest]]:
    """Each cell's requests (one per iteration), keyed (ix, iy, iz), in the order to queue."""
    cells: dict[tuple[int, int, int], list[GenerateRequest]] = {}
    resolver = ctx.services.jobs.resolver
    for iz, iy, ix in _order(chosen):
        # A1111's settings apply where the cell's run uses them (its schedule, its CFG).
        request = msgspec.structs.replace(base, **ctx.settings)
        picks = zip(chosen, (ix, iy, iz), strict=True)
        for (axis, values, _), index in sorted(picks, key=lambda pick: pick[0][0].late):
            request = axis.apply(ctx, request, values[index], values)  # type: ignore[misc]
        try:
            cell = resolver.without_unused_settings(request)
        except FieldError as exc:
            # The request as sent resolved: an axis value (a refiner as the checkpoint) broke
            # this cell, so the error names script_args, as every other bad script value.
            if exc.field == FIELD:
                raise
            raise FieldError(
                FIELD, f"a script value makes {exc.field} invalid: {exc.message}"
            ) from None
        cells[(ix, iy, iz)] = ctx.iterate(cell)
    _check_grid_size(ctx, [requests[0] for requests in cells.values()])
    return cells


def _check_grid_size(ctx: ScriptContext, requests: list[GenerateRequest]) -> None:
    """A1111's limit on the grid's size (its img_max_size_mp option, 200 megapixels)."""
    pixels = 0
    for request in requests:
        width, height = ctx.size_of(request)
        pixels += width * height * request.batch_size * len(ctx.iterations)
    megapixels = round(pixels / 1_000_000)
    if megapixels >= MAX_GRID_MEGAPIXELS:
        raise FieldError(
            FIELD,
            f"the grid would be {megapixels} megapixels; at most {MAX_GRID_MEGAPIXELS} "
            "(use fewer values or a smaller size)",
        )


def _order(chosen: list[tuple[Axis, list[Any], str]]) -> list[tuple[int, int, int]]:
    """Every (iz, iy, ix), the costliest axis outermost so its value changes least (models)."""
    sizes = [len(values) for _, values, _ in chosen]  # x, y, z
    # A1111's default nesting is Z, Y, X; a strictly costlier axis moves outward.
    nesting = sorted([2, 1, 0], key=lambda axis: -chosen[axis][0].cost)
    out = []
    for combo in itertools.product(*(range(sizes[axis]) for axis in nesting)):
        index = dict(zip(nesting, combo, strict=True))
        out.append((index[2], index[1], index[0]))
    return out


def _compose(
    ctx: ScriptContext,
    chosen: list[tuple[Axis, list[Any], str]],
    per_cell: dict[tuple[int, int, int], list[ResultImage]],
    draw_legend: bool,
    lone_images: bool,
    sub_grids: bool,
    margin: int,
    texts: dict[str, str],
    keep_random: bool,
) -> ScriptOutput:
    (x_axis, xs, _), (y_axis, ys, _), (z_axis, zs, _) = chosen
    first = next((images[0] for images in per_cell.values() if images), None)
    if first is None:
        return ScriptOutput(images=[], prompts=[])
    size = (first.width, first.height)
    cell_results: list[ResultImage | None] = []
    cell_images: list[Image.Image] = []
    for iz, iy, ix in itertools.product(range(len(zs)), range(len(ys)), range(len(xs))):
        images = per_cell[(ix, iy, iz)]
        cell_results.append(images[0] if images else None)
        pixels = [decode(image) for image in images]
        if not pixels:
            cell_images.append(blank(size))
        elif len(pixels) == 1:
            cell_images.append(pixels[0])
        else:
            # A1111 puts a cell's batch in a grid of its own, round(sqrt(n)) rows.
            cell_images.append(image_grid(pixels, max(1, round(math.sqrt(len(pixels))))))

    def legend(axis: Axis, values: list[Any]) -> list[list[Label]]:
        return [[Label(axis.caption(value))] for value in values]

    params = {"Script": TITLE}
    for which, (axis, values, _) in zip("XY", chosen[:2], strict=True):
        if axis.label != "Nothing":
            params[f"{which} Type"] = axis.label
            params[f"{which} Values"] = texts[which]
            if axis.label == "Seed" and not keep_random:
                params[f"Fixed {which} Values"] = ", ".join(str(v) for v in values)
    per_grid = len(xs) * len(ys)
    grids: list[ResultImage] = []
    grid_pixels: list[Image.Image] = []
    for iz in range(len(zs)):
        block = cell_images[iz * per_grid : (iz + 1) * per_grid]
        grid = image_grid(block, rows=len(ys))
        if draw_legend:
            grid = annotate(grid, cell_size(block), legend(x_axis, xs), legend(y_axis, ys), margin)
        grid_pixels.append(grid)
        source = next((r for r in cell_results[iz * per_grid : (iz + 1) * per_grid] if r), first)
        grids.append(composed(grid, infotext_with(source.infotext, params), source.seed))
    z_grid = image_grid(grid_pixels, rows=1)
    if draw_legend:
        z_grid = annotate(z_grid, cell_size(grid_pixels), legend(z_axis, zs), [[Label("")]])
    main_params = dict(params)
    if z_axis.label != "Nothing":
        main_params["Z Type"] = z_axis.label
        main_params["Z Values"] = texts["Z"]
        if z_axis.label == "Seed" and not keep_random:
            main_params["Fixed Z Values"] = ", ".join(str(v) for v in zs)
    main = composed(z_grid, infotext_with(first.infotext, main_params), first.seed)
    images = [main]
    if sub_grids:
        images += grids
    if lone_images:
        images += [
            image for images_ in per_cell_in_order(per_cell, xs, ys, zs) for image in images_
        ]
    prompt = ctx.base.prompt
    prompts = [prompt] * (1 + (len(grids) if sub_grids else 0))
    prompts += [prompt_of(image) for image in images[len(prompts) :]]
    return ScriptOutput(images=images, prompts=prompts, index_of_first_image=1, extra=params)


def per_cell_in_order(
    per_cell: dict[tuple[int, int, int], list[ResultImage]],
    xs: list[Any],
    ys: list[Any],
    zs: list[Any],
) -> list[list[ResultImage]]:
    """Each cell's images, X fastest, then Y, then Z (A1111's image order)."""
    return [
        per_cell[(ix, iy, iz)]
        for iz, iy, ix in itertools.product(range(len(zs)), range(len(ys)), range(len(xs)))
    ]
