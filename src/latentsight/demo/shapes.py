"""Seeded synthetic shapes data set with planted, switchable failure modes (the built-in demo)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

SHAPES = ("circle", "square", "triangle", "cross")
BACKGROUNDS = {
    "blue": (35, 65, 190),
    "green": (40, 120, 55),
    "brown": (115, 75, 40),
    "charcoal": (50, 50, 55),
    "purple": (95, 45, 120),
}
OBJECT_COLORS = {
    "red": (235, 45, 45),
    "yellow": (245, 220, 50),
    "white": (240, 240, 240),
    "orange": (250, 150, 30),
    "cyan": (60, 215, 225),
}

SPURIOUS_CLASS = SHAPES.index("circle")
SPURIOUS_BACKGROUND = "blue"
SPURIOUS_P_ALIGNED = 0.90  # P(blue background | circle) in train
SPURIOUS_P_OTHER = 0.05  # P(blue background | any other class) in train
GRAYSCALE_FRACTION = {"train": 0.01, "val": 0.15}
LABEL_NOISE_RATE = 0.35
HEAVY_CLUTTER = 4  # clutter >= this on a triangle makes it eligible for a label flip
MAX_CLUTTER = 6
EASY_COPY_FRACTION = 0.25
N_EASY_SOURCES = 12
OCCLUSION_PROBABILITY = 0.3
OCCLUSION_GREY = (128, 128, 128)
COLOR_JITTER = 10.0  # per-channel uniform jitter of background and object colours
PIXEL_NOISE = 3.0  # std of the Gaussian pixel noise added to every image
_CHUNK = 512  # images rendered per vectorised batch
_OBJECT_RGB = np.array(list(OBJECT_COLORS.values()), dtype=np.float32)
_BACKGROUND_RGB = np.array(list(BACKGROUNDS.values()), dtype=np.float32)


@dataclass(frozen=True)
class ShapesConfig:
    """Sizes, seed and planted-failure switches of the synthetic shapes data set."""

    n_train: int = 8000
    n_val: int = 2000
    image_size: int = 32
    seed: int = 0
    spurious: bool = True
    underrepresented: bool = True
    label_noise: bool = True
    easy_copies: bool = True

    def __post_init__(self) -> None:
        """Reject sizes the generator cannot honour."""
        if self.n_train < 1 or self.n_val < 1:
            raise ValueError("n_train and n_val must be >= 1")
        if self.image_size < 16:
            raise ValueError("image_size must be >= 16")

    @classmethod
    def tiny(cls, **overrides: Any) -> ShapesConfig:
        """Small config with every planted mode on, for fast tests and smoke runs."""
        return cls(**{"n_train": 600, "n_val": 240, **overrides})

    def clean(self) -> ShapesConfig:
        """Same sizes and seed with every planted mode off: the clean control."""
        return dataclasses.replace(
            self, spurious=False, underrepresented=False, label_noise=False, easy_copies=False
        )


@dataclass(eq=False)
class ShapesSubset:
    """One subset (train or val): images, carried labels, visible metadata and hidden truth."""

    name: str
    images: np.ndarray
    targets: np.ndarray
    metadata: pd.DataFrame
    truth: pd.DataFrame

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """Sample i as (float32 3xHxW tensor in [0, 1], carried label), like a torch Dataset."""
        image = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div_(255.0)
        return image, int(self.targets[i])


def generate_shapes(config: ShapesConfig = ShapesConfig()) -> dict[str, ShapesSubset]:
    """Generate {"train", "val"} deterministically from config (independent stream per subset)."""
    train_seq, val_seq = np.random.SeedSequence(config.seed).spawn(2)
    return {
        "train": _generate_subset("train", config.n_train, config, train_seq),
        "val": _generate_subset("val", config.n_val, config, val_seq),
    }


def _generate_subset(
    name: str, n: int, config: ShapesConfig, seq: np.random.SeedSequence
) -> ShapesSubset:
    """Draw every random variate in a fixed order, apply the planted modes, then render."""
    params_seq, pixel_seq = seq.spawn(2)
    rng = np.random.default_rng(params_seq)
    size = config.image_size
    scale = size / 32.0
    r_min, r_max = 3.0 * scale, 12.0 * scale
    n_colors = len(OBJECT_COLORS)

    # All draws happen unconditionally so that switching a mode changes only that mode.
    cls = rng.integers(0, len(SHAPES), n)
    radius = rng.uniform(r_min, r_max, n)
    obj_color = rng.integers(0, n_colors, n)
    obj_jitter = rng.uniform(-COLOR_JITTER, COLOR_JITTER, (n, 3))
    bg_jitter = rng.uniform(-COLOR_JITTER, COLOR_JITTER, (n, 3))
    pos_u = rng.random((n, 2))
    bg_uniform = rng.integers(0, len(BACKGROUNDS), n)
    bg_other = rng.integers(0, len(BACKGROUNDS) - 1, n)
    bg_order = rng.permutation(n)
    clutter = rng.integers(0, MAX_CLUTTER + 1, n)
    cl_kind = rng.integers(0, 3, (n, MAX_CLUTTER))
    cl_pos = rng.uniform(0.0, size - 1.0, (n, MAX_CLUTTER, 2))
    cl_size = rng.random((n, MAX_CLUTTER))
    cl_angle = rng.uniform(0.0, np.pi, (n, MAX_CLUTTER))
    cl_color = rng.integers(0, n_colors, (n, MAX_CLUTTER))
    occluded = rng.random(n) < OCCLUSION_PROBABILITY
    occ_side = rng.integers(0, 4, n)
    occ_depth = rng.uniform(0.2, 0.5, n)
    occ_grey = rng.random(n) < 0.5
    gray_order = rng.permutation(n)
    flip_u = rng.random(n)
    flip_offset = rng.integers(1, len(SHAPES), n)
    copy_order = rng.permutation(n)
    copy_source = rng.integers(0, N_EASY_SOURCES, n)
    copy_shift = rng.integers(-1, 2, (n, 2))

    margin = 1.15 * radius + 0.5  # keeps every shape (triangle is the tallest) inside the frame
    x = margin + pos_u[:, 0] * (size - 1.0 - 2.0 * margin)
    y = margin + pos_u[:, 1] * (size - 1.0 - 2.0 * margin)

    # Mode 4: easy sources (large, centred, clean) and jittered copies of them, train only.
    easy_copy = np.zeros(n, dtype=bool)
    easy_source = np.full(n, -1, dtype=np.int64)
    is_source = np.zeros(n, dtype=bool)
    if config.easy_copies and name == "train":
        n_copies = round(EASY_COPY_FRACTION * n)
        sources = copy_order[n_copies : n_copies + N_EASY_SOURCES]
        if len(sources) > 0:
            copies = copy_order[:n_copies]
            is_source[sources] = True
            cls[sources] = np.arange(len(sources)) % len(SHAPES)
            radius[sources] = r_max * (0.85 + 0.15 * (radius[sources] - r_min) / (r_max - r_min))
            x[sources] = y[sources] = (size - 1.0) / 2.0
            clutter[sources] = 0
            occluded[sources] = False
            src = sources[copy_source[copies] % len(sources)]
            easy_copy[copies] = True
            easy_source[copies] = src
            for arr in (cls, radius, obj_color, obj_jitter, bg_jitter, clutter, occluded):
                arr[copies] = arr[src]
            x[copies] = x[src] + copy_shift[copies, 0]
            y[copies] = y[src] + copy_shift[copies, 1]

    background = _assign_backgrounds(
        name, config, cls, easy_copy, easy_source, is_source, bg_uniform, bg_other, bg_order
    )

    # Mode 3: inconsistent labels among heavily cluttered triangles.
    heavy_triangle = (cls == SHAPES.index("triangle")) & (clutter >= HEAVY_CLUTTER)
    flipped = heavy_triangle & (flip_u < LABEL_NOISE_RATE) & config.label_noise
    targets = np.where(flipped, (cls + flip_offset) % len(SHAPES), cls).astype(np.int64)

    # Mode 2: a grayscale population, rare in train and common in val.
    grayscale = np.zeros(n, dtype=bool)
    if config.underrepresented:
        eligible = gray_order[~(is_source | easy_copy)[gray_order]]
        grayscale[eligible[: round(GRAYSCALE_FRACTION[name] * n)]] = True

    scene = _Scene(
        cls=cls,
        radius=radius,
        x=x,
        y=y,
        obj_rgb=_OBJECT_RGB[obj_color] + obj_jitter,
        bg_rgb=_BACKGROUND_RGB[background] + bg_jitter,
        clutter=clutter,
        cl_kind=cl_kind,
        cl_pos=cl_pos,
        cl_size=cl_size,
        cl_angle=cl_angle,
        cl_rgb=_OBJECT_RGB[cl_color],
        occluded=occluded,
        occ_side=occ_side,
        occ_depth=occ_depth,
        occ_grey=occ_grey,
        grayscale=grayscale,
    )
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    occlusion = np.zeros(n, dtype=np.float64)
    pixel_rng = np.random.default_rng(pixel_seq)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        images[sl], occlusion[sl] = _render(scene.rows(sl), size, pixel_rng)

    ids = [f"{name}/{i}" for i in range(n)]
    bg_names = np.array(list(BACKGROUNDS))[background]
    metadata = pd.DataFrame(
        {
            "id": ids,
            "size": radius.astype(np.float64),
            "object_color": np.array(list(OBJECT_COLORS))[obj_color],
            "x": x.astype(np.float64),
            "y": y.astype(np.float64),
            "background": bg_names,
            "clutter": clutter.astype(np.int64),
            "occlusion": occlusion,
        }
    )
    on_spurious_bg = bg_names == SPURIOUS_BACKGROUND
    truth = pd.DataFrame(
        {
            "id": ids,
            "true_shape": cls.astype(np.int64),
            "label_flipped": flipped,
            "grayscale": grayscale,
            "easy_copy": easy_copy,
            "easy_source": easy_source,
            "spurious_aligned": on_spurious_bg & (cls == SPURIOUS_CLASS),
            "spurious_conflict": on_spurious_bg & (cls != SPURIOUS_CLASS),
        }
    )
    return ShapesSubset(name, images, targets, metadata, truth)


def _assign_backgrounds(
    name: str,
    config: ShapesConfig,
    cls: np.ndarray,
    easy_copy: np.ndarray,
    easy_source: np.ndarray,
    is_source: np.ndarray,
    bg_uniform: np.ndarray,
    bg_other: np.ndarray,
    bg_order: np.ndarray,
) -> np.ndarray:
    """Background index per image; in a spurious train set, exact per-class blue proportions."""
    if not (config.spurious and name == "train"):
        background = bg_uniform.copy()
        background[easy_copy] = background[easy_source[easy_copy]]
        return background
    blue = list(BACKGROUNDS).index(SPURIOUS_BACKGROUND)
    non_blue = np.array([i for i in range(len(BACKGROUNDS)) if i != blue])
    background = non_blue[bg_other]
    # Sources follow the correlation deterministically; copies inherit their source's background.
    background[is_source & (cls == SPURIOUS_CLASS)] = blue
    background[easy_copy] = background[easy_source[easy_copy]]
    free = bg_order[~(is_source | easy_copy)[bg_order]]
    for c in range(len(SHAPES)):
        p_blue = SPURIOUS_P_ALIGNED if c == SPURIOUS_CLASS else SPURIOUS_P_OTHER
        fixed_blue = np.count_nonzero((is_source | easy_copy) & (cls == c) & (background == blue))
        n_blue = round(p_blue * np.count_nonzero(cls == c)) - fixed_blue
        candidates = free[cls[free] == c]
        background[candidates[: max(n_blue, 0)]] = blue
    return background


@dataclass
class _Scene:
    """Per-image drawing parameters (one row per image), everything the renderer needs."""

    cls: np.ndarray  # main shape index
    radius: np.ndarray  # main object radius, px
    x: np.ndarray  # main object centre, px
    y: np.ndarray
    obj_rgb: np.ndarray  # N x 3 float
    bg_rgb: np.ndarray  # N x 3 float
    clutter: np.ndarray  # number of distractors drawn
    cl_kind: np.ndarray  # N x MAX_CLUTTER: 0 dot, 1 blob, 2 stroke
    cl_pos: np.ndarray  # N x MAX_CLUTTER x 2 (x, y), px
    cl_size: np.ndarray  # N x MAX_CLUTTER, uniform 0..1 within each kind's size range
    cl_angle: np.ndarray  # N x MAX_CLUTTER, stroke direction, radians
    cl_rgb: np.ndarray  # N x MAX_CLUTTER x 3 float
    occluded: np.ndarray  # bool
    occ_side: np.ndarray  # side the occluding band comes from: left, right, top, bottom
    occ_depth: np.ndarray  # how far the band reaches across the object, 0..1
    occ_grey: np.ndarray  # band is grey (True) or background-coloured (False)
    grayscale: np.ndarray  # bool

    def rows(self, sl: slice) -> _Scene:
        """The same scene restricted to a slice of images."""
        return _Scene(**{f.name: getattr(self, f.name)[sl] for f in dataclasses.fields(self)})


def _render(sc: _Scene, size: int, pixel_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render scene sc with anti-aliased signed-distance masks; return (uint8 images, occlusion)."""
    b, scale = len(sc.cls), np.float32(size / 32.0)
    grid = np.arange(size, dtype=np.float32)
    gy, gx = grid[None, :, None], grid[None, None, :]
    img = np.broadcast_to(sc.bg_rgb[:, None, None, :], (b, size, size, 3)).astype(np.float32)

    # Distractors go under the main object: small dots, blobs and short strokes.
    for k in range(MAX_CLUTTER):
        rows = np.flatnonzero(sc.clutter > k)
        if len(rows) == 0:
            continue
        dx = gx - sc.cl_pos[rows, k, 0, None, None].astype(np.float32)
        dy = gy - sc.cl_pos[rows, k, 1, None, None].astype(np.float32)
        u = sc.cl_size[rows, k, None, None].astype(np.float32)
        dot = np.sqrt(dx * dx + dy * dy) - (0.7 + 0.7 * u) * scale
        blob = np.maximum(np.abs(dx), np.abs(dy)) - (0.6 + 0.6 * u) * scale
        c = np.cos(sc.cl_angle[rows, k]).astype(np.float32)[:, None, None]
        sn = np.sin(sc.cl_angle[rows, k]).astype(np.float32)[:, None, None]
        half = (1.5 + u) * scale
        t = np.clip(dx * c + dy * sn, -half, half)
        stroke = np.sqrt((dx - t * c) ** 2 + (dy - t * sn) ** 2) - 0.5 * scale
        kind = sc.cl_kind[rows, k, None, None]
        sd = np.where(kind == 0, dot, np.where(kind == 1, blob, stroke))
        _paint(img, rows, _coverage(sd), sc.cl_rgb[rows, k])

    dx = gx - sc.x[:, None, None].astype(np.float32)
    dy = gy - sc.y[:, None, None].astype(np.float32)
    r = sc.radius[:, None, None].astype(np.float32)
    adx, ady = np.abs(dx), np.abs(dy)
    circle = np.sqrt(dx * dx + dy * dy) - r
    square = np.maximum(adx, ady) - 0.85 * r
    slope = np.maximum(-0.866 * dx - 0.5 * dy, 0.866 * dx - 0.5 * dy)
    triangle = np.maximum(dy, slope) - 0.55 * r
    arm, width = r, 0.3 * r
    cross = np.minimum(np.maximum(adx - width, ady - arm), np.maximum(adx - arm, ady - width))
    sd = np.choose(sc.cls[:, None, None], [circle, square, triangle, cross])
    alpha = _coverage(sd)
    _paint(img, np.arange(b), alpha, sc.obj_rgb)

    # Occlusion: a band of background or grey cut into the object from one side.
    ext = 1.1 * r
    along = np.choose(sc.occ_side[:, None, None], [dx, -dx, dy, -dy])
    across = np.choose(sc.occ_side[:, None, None], [ady, ady, adx, adx])
    depth = sc.occ_depth[:, None, None].astype(np.float32)
    patch = (
        (along <= -ext + 2.0 * ext * depth) & (across <= ext + scale) & sc.occluded[:, None, None]
    )
    fill = np.where(sc.occ_grey[:, None], np.float32(OCCLUSION_GREY), sc.bg_rgb).astype(np.float32)
    img = np.where(patch[..., None], fill[:, None, None, :], img)
    occlusion = (alpha * patch).sum(axis=(1, 2)) / np.maximum(alpha.sum(axis=(1, 2)), 1e-6)

    img += pixel_rng.standard_normal(img.shape, dtype=np.float32) * PIXEL_NOISE
    gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = np.where(sc.grayscale[:, None, None, None], gray[..., None], img)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), occlusion.astype(np.float64)


def _coverage(sd: np.ndarray) -> np.ndarray:
    """Anti-aliased pixel coverage from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - sd, 0.0, 1.0)


def _paint(img: np.ndarray, rows: np.ndarray, alpha: np.ndarray, rgb: np.ndarray) -> None:
    """Alpha-blend colour rgb (one per row) into img[rows] in place."""
    img[rows] += alpha[..., None] * (rgb[:, None, None, :].astype(np.float32) - img[rows])
