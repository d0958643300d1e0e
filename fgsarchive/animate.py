"""Animations of the 8x8 guide-star frames beside the flux trace (GIF with Pillow, MP4 with ffmpeg).

>>> from fgsarchive import Archive
>>> from fgsarchive.animate import animate
>>> animate(Archive("fgsarchive.duckdb"), program=1534, obs=1, visit=1, duration_s=20, out="v1.gif")
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .archive import Archive, describe_selection
from .errors import SelectionError, UsageError

__all__ = ["animate", "ANIMATION_FORMATS", "MAX_FRAMES"]

SECONDS_PER_DAY = 86400.0
ANIMATION_FORMATS = (".gif", ".mp4")
#: Most frames one animation draws (after ``step``); more is refused with a hint.
MAX_FRAMES = 3000


def _writer(out: Path, fps: float):
    from matplotlib import animation

    suffix = out.suffix.lower()
    if suffix == ".gif":
        return None  # written with Pillow by _write_gif
    if suffix == ".mp4":
        if not (animation.writers.is_available("ffmpeg") and shutil.which("ffmpeg")):
            raise UsageError(
                f"{out}: MP4 needs ffmpeg, which is not installed; write a .gif instead"
            )
        return animation.FFMpegWriter(fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"])
    raise UsageError(f"{out}: choose a file name ending in {' or '.join(ANIMATION_FORMATS)}")


def animate(
    arc: Archive,
    *,
    program: int,
    obs: int | None = None,
    visit: int | None = None,
    gs_id: str | None = None,
    start_s: float = 0.0,
    duration_s: float = 30.0,
    step: int = 1,
    fps: float = 15.0,
    out: str | Path,
    dpi: int = 80,
) -> Path:
    """Write an animation of the frames of a selection: the 8x8 image beside the flux trace.

    ``start_s`` and ``duration_s`` are seconds from the first frame of the selection; every
    ``step``-th frame is drawn at ``fps`` frames per second. The image is in DN/s with a colour
    scale fixed over the clip; when the Gaussian fits exist (``fgsarchive fit``) the fitted centroid
    is marked with a cross. The flux trace (the star's flux with the sky subtracted once fitted,
    else the raw sum of the 64 pixels; DN/s) shows every frame of the clip and a cursor at the
    current one. ``out`` ending in ``.gif`` uses Pillow, ``.mp4`` ffmpeg.
    Returns the path written. Example:
    ``animate(arc, program=1534, obs=1, visit=1, start_s=60, duration_s=20, step=2, out="clip.gif")``
    """
    out = Path(out)
    writer = _writer(out, fps)
    if step < 1:
        raise UsageError(f"--step must be at least 1 (got {step})")
    if not duration_s > 0:
        raise UsageError(f"--duration-s must be positive (got {duration_s})")
    files = arc.fg_files(program, obs, visit, gs_id=gs_id)
    t0 = float(files["data_start_mjd"].min())
    lo = t0 + start_s / SECONDS_PER_DAY
    hi = lo + duration_s / SECONDS_PER_DAY
    selection = describe_selection(program=program, obs=obs, visit=visit, gs_id=gs_id)
    try:
        frames = arc.frames(program, obs, visit, gs_id=gs_id, start_mjd=lo, end_mjd=hi)
    except SelectionError:
        raise SelectionError(
            f"no frames of {selection} between {start_s:g} s and {start_s + duration_s:g} s "
            f"after its start (it lasts {(files['data_end_mjd'].max() - t0) * SECONDS_PER_DAY:.0f} s)"
        ) from None
    shown = frames[::step]
    if shown.height > MAX_FRAMES:
        raise UsageError(
            f"{shown.height} frames to draw: shorten --duration-s or raise --step "
            f"(at most {MAX_FRAMES} frames per animation)"
        )
    pixels = np.stack(shown["pixels"].to_numpy()).reshape(-1, 8, 8).astype(np.float32)
    centroids = None
    tables = arc.tables()
    flux_column, flux_label = "flux", "raw 64-pixel sum (sky included) [DN/s]"
    if "fits" in tables:
        star = ["star_flux"] if "photometry" in tables else []
        ts = arc.timeseries(
            program,
            obs,
            visit,
            gs_id=gs_id,
            columns=["x_mean", "y_mean", *star],
            start_mjd=lo,
            end_mjd=hi,
        )
        centroids = shown.select("file_name", "frame").join(
            ts.select("file_name", "frame", "x_mean", "y_mean"),
            on=["file_name", "frame"],
            how="left",
        )
        if star:  # the trace shows the star's own flux, the sky taken out
            keys = ["file_name", "frame"]
            frames = frames.join(ts.select(*keys, "star_flux"), on=keys, how="left")
            shown = shown.join(ts.select(*keys, "star_flux"), on=keys, how="left")
            flux_column, flux_label = "star_flux", "star flux (sky subtracted) [DN/s]"
    t_all = (frames["time_mjd"].to_numpy() - t0) * SECONDS_PER_DAY
    flux_all = frames[flux_column].to_numpy()
    t_shown = (shown["time_mjd"].to_numpy() - t0) * SECONDS_PER_DAY
    finite = pixels[np.isfinite(pixels)]
    vmin, vmax = np.percentile(finite, [1, 99.9]) if finite.size else (0.0, 1.0)

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_img, ax_flux = fig.subplots(1, 2, width_ratios=[1, 2.2])
    image = ax_img.imshow(
        pixels[0], origin="lower", cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    fig.colorbar(image, ax=ax_img, label="DN/s", shrink=0.85)
    ax_img.set_xlabel("x [px]")
    ax_img.set_ylabel("y [px]")
    ax_img.set_xticks(range(0, 8, 2))
    ax_img.set_yticks(range(0, 8, 2))
    (cross,) = ax_img.plot([], [], "+", color="cyan", ms=14, mew=2, label="fitted centroid")
    if centroids is not None:
        ax_img.set_xlabel("x [px]   (+ fitted centroid)")
    label = ax_img.set_title("", fontsize=9)
    ax_flux.plot(t_all, flux_all, lw=0.6, color="tab:blue")
    cursor = ax_flux.axvline(t_shown[0], color="tab:red", lw=1.2)
    (dot,) = ax_flux.plot([t_shown[0]], [shown[flux_column][0]], "o", color="tab:red", ms=5)
    ax_flux.set_xlabel(f"time since the selection's first frame [s] (MJD {t0:.5f})")
    ax_flux.set_ylabel(flux_label)
    ax_flux.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax_flux.grid(alpha=0.3)
    ax_flux.set_title(
        f"program {program}"
        + (f" obs {obs}" if obs is not None else "")
        + (f" visit {visit}" if visit is not None else "")
        + f" · every {step} frame{'s' if step > 1 else ''} · {fps:g} fps",
        fontsize=9,
    )
    xs = centroids["x_mean"].to_numpy() if centroids is not None else None
    ys = centroids["y_mean"].to_numpy() if centroids is not None else None
    names = shown["gs_id"].to_list()
    numbers = shown["frame"].to_list()
    flux = shown[flux_column].to_numpy()

    def update(i: int) -> None:
        image.set_data(pixels[i])
        cursor.set_xdata([t_shown[i], t_shown[i]])
        dot.set_data([t_shown[i]], [flux[i]])
        label.set_text(f"{names[i]} frame {numbers[i]}  t = {t_shown[i]:.2f} s")
        if xs is not None and np.isfinite(xs[i]) and np.isfinite(ys[i]):
            cross.set_data([xs[i]], [ys[i]])
        else:
            cross.set_data([], [])

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if writer is None:  # GIF: draw the static parts once, blit the moving ones
            _write_gif(fig, [image, cursor, dot, cross, label], update, shown.height, out, fps, dpi)
        else:
            fig.canvas.draw()
            fig.set_layout_engine("none")  # lay out once, not on every frame
            with writer.saving(fig, str(out), dpi):
                for i in range(shown.height):
                    update(i)
                    writer.grab_frame()
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out


def _write_gif(fig: Figure, moving: list, update, n: int, out: Path, fps: float, dpi: int) -> None:
    """Render ``n`` frames by blitting the ``moving`` artists over a static background; save a GIF."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    fig.set_layout_engine("none")
    for artist in moving:
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    images = []
    for i in range(n):
        update(i)
        canvas.restore_region(background)
        for artist in moving:
            fig.draw_artist(artist)
        rgb = np.asarray(canvas.buffer_rgba())[..., :3]
        images.append(Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=128))
    images[0].save(
        out,
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000.0 / fps)),
        loop=0,
        optimize=False,
    )
