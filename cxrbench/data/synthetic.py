"""Synthetic chest radiographs, generated on the fly with numpy: a dataset that needs no files.

About 530 lines because one generator draws every image (anatomy, findings per task, the
patient/source structure and the shortcut) from one seeded stream; split, the parts would have to
share that stream's order, which is what keeps every synthetic result reproducible.

Every image is a deterministic function of ``(seed, index)``: the anatomy (two dark lung fields,
ribs, clavicles, spine, mediastinum and heart, diaphragm, body outline) is drawn in relative
coordinates, so an image is rendered directly at any size. Images of one synthetic patient share
the anatomy, the label and the findings; each image adds its own small rotation/shift, exposure
and film noise. Findings depend on the task:

- binary ``(normal, pneumonia)``: blurry opacities inside a lung field;
- multiclass ``(normal, lobar, diffuse)``: one dense patch confined to a lobe vs many small faint
  patches in both lungs;
- multilabel: one visual signature per label (ChestX-ray14 names by default, matched by name).

``difficulty`` in [0, 1] makes findings fainter and smaller relative to the noise (labels are
never flipped). ``shortcut`` burns a bright tag into the corner of a fraction of the positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from cxrbench.errors import DatasetError

GENERATOR_VERSION = 1
"""Bump whenever the rendered images change (it is part of the fingerprint)."""

BINARY_CLASSES = ("normal", "pneumonia")
MULTICLASS_CLASSES = ("normal", "lobar", "diffuse")
CHESTXRAY14_LABELS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
_TAGS = {"patient": 1, "image": 2, "labels": 3, "split": 4}


class SyntheticOptions(BaseModel):
    """The options of the ``synthetic_cxr`` dataset (``dataset.options`` in a suite)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_samples: int = Field(600, ge=1, le=10_000_000, description="Number of images.")
    seed: int = Field(0, ge=0, description="Everything (labels, patients, pixels) follows from it.")
    difficulty: float = Field(0.5, ge=0.0, le=1.0, description="0 = obvious findings, 1 = faint and tiny.")
    prevalence: float | list[float] | None = Field(
        None, description="binary: fraction positive (0.4); multiclass: one fraction per class "
                          "(equal thirds); multilabel: one value or one per label (0.20 down to 0.10).")
    max_images_per_patient: int = Field(3, ge=1, le=50, description="Each patient has 1..max images.")
    shortcut: StrictBool = Field(False, description="Burn a bright corner tag into some positives.")
    shortcut_strength: float = Field(0.9, ge=0.0, le=1.0, description="Fraction of positives tagged.")
    official_split: StrictBool = Field(False, description="Ship a patient-wise 70/10/20 train/val/test split.")


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace(" ", "").replace("-", "")


def label_signatures(names: Sequence[str]) -> list[str]:
    """The finding drawn for each multilabel class.

    A name matching a ChestX-ray14 label (case, spaces and underscores ignored) gets that label's
    signature; other names take the unused signatures in order, then ``generic<k>`` variants.
    """
    by_norm = {_norm(n): n for n in CHESTXRAY14_LABELS}
    sigs: list[str | None] = [by_norm.get(_norm(n)) for n in names]
    free = [n for n in CHESTXRAY14_LABELS if n not in sigs]
    out: list[str] = []
    for k, sig in enumerate(sigs):
        out.append(sig if sig is not None else (free.pop(0) if free else f"generic{k}"))
    return out


# ----------------------------------------------------------------------------- labels and patients

def _rng(seed: int, tag: str, *idx: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TAGS[tag], *idx])


def _patient_sizes(n: int, max_per: int, rng: np.random.Generator) -> np.ndarray:
    sizes = rng.integers(1, max_per + 1, size=n)  # more than enough
    cum = np.cumsum(sizes)
    k = int(np.searchsorted(cum, n)) + 1
    sizes = sizes[:k].copy()
    sizes[-1] -= int(cum[k - 1] - n)
    return sizes


def _assign_classes(sizes: np.ndarray, fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per patient so that image counts per class come as close as possible to the targets."""
    n = int(sizes.sum())
    target = np.floor(fractions * n).astype(int)
    target[np.argsort(-(fractions * n - target))[: n - target.sum()]] += 1
    count = np.zeros(len(fractions), dtype=int)
    out = np.empty(len(sizes), dtype=int)
    for p in rng.permutation(len(sizes)):  # largest remaining deficit first
        c = int(np.argmax(target - count - (count + sizes[p] > target) * 0.5))
        out[p] = c
        count[c] += sizes[p]
    return out


def _official_split(patient_class: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """'train'/'val'/'test' per patient, 70/10/20 within each class (patients, not images)."""
    split = np.empty(len(patient_class), dtype=object)
    for c in np.unique(patient_class):
        members = rng.permutation(np.flatnonzero(patient_class == c))
        n_test, n_val = round(0.2 * len(members)), round(0.1 * len(members))
        split[members[:n_test]] = "test"
        split[members[n_test:n_test + n_val]] = "val"
        split[members[n_test + n_val:]] = "train"
    return split


# ----------------------------------------------------------------------------- anatomy and findings

@dataclass(frozen=True)
class _Anatomy:
    """One patient's anatomy, in relative coordinates (x: -1 left .. 1 right, y: -1 top .. 1 bottom)."""

    body_w: float
    lung_dx: float
    lung_cy: float
    lung_a: float
    lung_b: float
    dome: tuple[float, float]  # top of the left/right (image) hemidiaphragm
    heart_cx: float
    heart_cy: float
    heart_a: float
    heart_b: float
    rib_y0: float
    rib_gap: float
    rib_bend: float
    tissue: float
    lung_air: float


def _sample_anatomy(rng: np.random.Generator) -> _Anatomy:
    u = rng.uniform(-1, 1, size=16).tolist()  # python floats keep the image maths in float32
    return _Anatomy(
        body_w=0.9 + 0.05 * u[0], lung_dx=0.39 + 0.025 * u[1], lung_cy=-0.04 + 0.03 * u[2],
        lung_a=0.32 + 0.025 * u[3], lung_b=0.66 + 0.04 * u[4],
        dome=(0.4 + 0.03 * u[5], 0.45 + 0.03 * u[6]),
        heart_cx=0.1 + 0.02 * u[7], heart_cy=0.44 + 0.02 * u[8], heart_a=0.3 + 0.025 * u[9],
        heart_b=0.29 + 0.015 * u[10],
        rib_y0=-0.7 + 0.03 * u[11], rib_gap=0.14 + 0.01 * u[12], rib_bend=0.6 + 0.08 * u[13],
        tissue=0.5 + 0.04 * u[14], lung_air=0.27 + 0.03 * u[15],
    )


def _severity(rng: np.random.Generator, difficulty: float) -> tuple[float, float]:
    """(amplitude scale, size scale) of one finding: a random severity shrunk by the difficulty."""
    u = rng.uniform()
    amp = (2.0 - 1.5 * difficulty) * (0.2 + 0.8 * u)
    size = (1.35 - 0.55 * difficulty) * (0.55 + 0.45 * rng.uniform())
    return amp, size


def _lung_point(rng: np.random.Generator, side: int | None = None, zone: tuple[float, float] = (-0.6, 0.55),
                lateral: tuple[float, float] = (-0.6, 0.6)) -> dict[str, float]:
    """A point inside a lung, in lung-normalised coordinates (fx, fy in about [-1, 1])."""
    side = int(rng.integers(2)) if side is None else side
    return {"side": side, "fx": float(rng.uniform(*lateral)), "fy": float(rng.uniform(*zone))}


def _sample_findings(kind: str, rng: np.random.Generator, difficulty: float) -> list[dict[str, Any]]:
    """Drawing instructions for one finding class (a list of primitive paints)."""
    amp, size = _severity(rng, difficulty)
    tex = int(rng.integers(2**31))
    if kind in ("pneumonia", "Pneumonia"):
        n = int(rng.integers(1, 4))
        side = int(rng.integers(2))
        return [{"op": "blob", **_lung_point(rng, side if rng.uniform() < 0.7 else None, (-0.2, 0.6)),
                 "sx": 0.14 * size * rng.uniform(0.8, 1.4), "sy": 0.14 * size * rng.uniform(0.8, 1.4),
                 "amp": 0.2 * amp, "tex": tex + i, "mottle": 0.5} for i in range(n)]
    if kind in ("lobar", "Consolidation"):
        strong = kind == "lobar"
        return [{"op": "lobe", "side": int(rng.integers(2)), "upper": bool(rng.uniform() < 0.35),
                 "fissure": float(rng.uniform(-0.15, 0.2)), "extent": (0.45 if strong else 0.28) * size,
                 "amp": (0.25 if strong else 0.18) * amp, "tex": tex}]
    if kind == "diffuse":
        return [{"op": "spots", "grid": int(rng.integers(30, 38)), "thr": 0.9 + 0.3 * (1 - size),
                 "amp": 0.1 * amp, "tex": tex}]
    if kind == "Atelectasis":
        p = _lung_point(rng, None, (0.15, 0.45))
        return [{"op": "dome", "side": p["side"], "shift": -0.08 * size},
                {"op": "band", **p, "sx": 0.35, "sy": 0.025 * size + 0.01, "amp": 0.16 * amp}]
    if kind == "Cardiomegaly":
        return [{"op": "heart", "scale": 1.0 + 0.45 * size * min(1.0, 0.4 + 0.6 * amp)}]
    if kind == "Effusion":
        return [{"op": "fluid", "side": int(rng.integers(2)), "height": 0.12 + 0.18 * size, "amp": 0.22 * amp}]
    if kind == "Infiltration":
        side = int(rng.integers(2))
        return [{"op": "blob", **_lung_point(rng, side, (-0.3, 0.3)), "sx": 0.06 * size, "sy": 0.05 * size,
                 "amp": 0.1 * amp, "tex": tex + i, "mottle": 0.8} for i in range(int(rng.integers(3, 6)))]
    if kind == "Mass":
        return [{"op": "disk", **_lung_point(rng, None, (-0.5, 0.3), (-0.45, 0.45)),
                 "r": 0.07 + 0.05 * size, "amp": 0.2 * amp}]
    if kind == "Nodule":
        return [{"op": "disk", **_lung_point(rng, None, (-0.55, 0.4)), "r": 0.018 + 0.022 * size, "amp": 0.25 * amp}]
    if kind == "Pneumothorax":
        return [{"op": "ptx", "side": int(rng.integers(2)), "depth": 0.12 + 0.2 * size, "amp": min(1.0, 0.6 * amp)}]
    if kind == "Edema":
        return [{"op": "haze", "amp": 0.18 * amp, "spread": 0.7 + 0.3 * size}]
    if kind == "Emphysema":
        return [{"op": "hyper", "amount": min(1.0, 0.5 * amp + 0.3 * size)}]
    if kind == "Fibrosis":
        return [{"op": "reticular", "amp": 0.2 * amp, "tex": tex, "grid": 32}]
    if kind == "Pleural_Thickening":
        return [{"op": "rim", "side": int(rng.integers(2)), "width": 0.12 + 0.12 * size, "amp": 0.22 * amp}]
    if kind == "Hernia":
        return [{"op": "hernia", "r": 0.07 + 0.04 * size, "amp": 0.18 * amp}]
    if kind.startswith("generic"):
        k = int(kind[len("generic"):])
        side, fy = k % 2, (-0.45, -0.1, 0.25)[(k // 2) % 3]
        return [{"op": "disk" if (k // 6) % 2 else "blob", "side": side, "fx": (-0.3, 0.3)[(k // 12) % 2],
                 "fy": fy, "r": 0.06 * size, "sx": 0.07 * size, "sy": 0.07 * size, "amp": 0.2 * amp,
                 "tex": tex, "mottle": 0.0}]
    raise ValueError(f"unknown finding {kind!r}")  # pragma: no cover - internal


# ----------------------------------------------------------------------------- rendering

def _step(z: np.ndarray | float, k: float) -> np.ndarray:
    """A smooth 0 -> 1 step at z = 0 with steepness k."""
    return 0.5 + 0.5 * np.tanh(k * np.asarray(z, dtype=np.float32))


@lru_cache(maxsize=64)
def _upsampler(size: int, grid: int) -> np.ndarray:
    """(size, grid) Gaussian interpolation weights with unit L2 row norm (keeps unit variance)."""
    px = (np.arange(size) + 0.5) / size
    centres = (np.arange(grid) + 0.5) / grid
    w = np.exp(-(((px[:, None] - centres[None, :]) * grid) ** 2) / 0.9)
    return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, grid: int) -> np.ndarray:
    """Unit-variance smooth random field with about ``grid`` bumps across the image."""
    w = _upsampler(size, grid)
    g = rng.standard_normal((grid, grid)).astype(np.float32)
    # einsum, not @: BLAS threads spin between these tiny products and slow rendering 4x on busy CPUs
    return np.einsum("ik,jk->ij", np.einsum("ik,kl->il", w, g), w)


class _Scene:
    """The anatomy rasterised on one image's (rotated, shifted, zoomed) coordinate grid."""

    def __init__(self, anat: _Anatomy, size: int, rot: float, shift: tuple[float, float], zoom: float,
                 mods: list[dict[str, Any]]):
        self.size, self.px = size, 2.0 / size  # px: one pixel in relative units
        u = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1)
        c, s = np.cos(rot), np.sin(rot)
        self.X = ((c * u[None, :] + s * u[:, None]) / zoom - shift[0]).astype(np.float32)
        self.Y = ((-s * u[None, :] + c * u[:, None]) / zoom - shift[1]).astype(np.float32)
        heart_scale, dome_shift, hyper = 1.0, [0.0, 0.0], 0.0
        for m in mods:
            if m["op"] == "heart":
                heart_scale = m["scale"]
            elif m["op"] == "dome":
                dome_shift[m["side"]] += m["shift"]
            elif m["op"] == "hyper":
                hyper = m["amount"]
        self.anat, self.hyper = anat, hyper
        self.lung_b = anat.lung_b * (1 + 0.06 * hyper)
        self.dome = [anat.dome[i] + dome_shift[i] + 0.07 * hyper for i in (0, 1)]
        X, Y = self.X, self.Y
        ha = anat.heart_a * heart_scale
        hb = anat.heart_b * (1 + 0.2 * (heart_scale - 1))
        self.heart = _step(1 - ((X - anat.heart_cx - 0.35 * (ha - anat.heart_a)) / ha) ** 2
                           - ((Y - anat.heart_cy - 0.3 * (hb - anat.heart_b)) / hb) ** 2, 6)
        self.q: list[np.ndarray] = []
        self.lungs: list[np.ndarray] = []
        taper = 0.72 + 0.28 * np.clip((Y - anat.lung_cy) / self.lung_b + 0.5, -1, 1)  # narrow apex
        curve = 0.16 * (1 - 0.8 * hyper)
        # each hemidiaphragm: a dome peaking mid-lung, dropping laterally, flat under the heart
        lat0 = np.maximum(-(X + anat.lung_dx) / anat.lung_a, -0.4)
        lat1 = np.maximum((X - anat.lung_dx) / anat.lung_a, -0.4)
        self.dome_y = np.where(X < 0, self.dome[0] + curve * lat0 ** 2, self.dome[1] + curve * lat1 ** 2)
        for side in (0, 1):
            cx = self.lung_cx(side)
            q = 1 - ((X - cx) / (anat.lung_a * taper)) ** 2 - ((Y - anat.lung_cy) / self.lung_b) ** 2
            above_dome = self.dome_y - Y
            medial = (2 * side - 1) * X - 0.1
            self.q.append(q)
            self.lungs.append(_step(q, 6) * _step(above_dome, 40) * _step(medial, 40) * (1 - self.heart))

    def lung_cx(self, side: int) -> float:
        return (2 * side - 1) * self.anat.lung_dx

    def point(self, f: Mapping[str, Any]) -> tuple[float, float]:
        """Image-frame coordinates of a lung-normalised point (fx mirrored so + is lateral)."""
        sign = 2 * f["side"] - 1
        return (self.lung_cx(f["side"]) + sign * f["fx"] * self.anat.lung_a,
                self.anat.lung_cy + f["fy"] * self.lung_b)


def _base_density(sc: _Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Density of a normal chest (bright = dense) and the rib field (pneumothorax hides ribs)."""
    a, X, Y = sc.anat, sc.X, sc.Y
    ax = np.abs(X)
    bx, by = (ax / a.body_w) ** 2, ((Y - 0.3) / 1.25) ** 2  # squares only: float powers are slow
    body = _step(1 - bx * bx - by * by * by, 3)
    D = a.tissue * np.maximum(body, _step(0.22 - ax, 30) * _step(-0.75 - Y, 12))  # torso and neck
    medi = _step(0.07 + 0.05 * _step(Y + 0.35, 6) - np.abs(X - 0.01), 35) * _step(0.6 - Y, 10)
    knob = _step(1 - ((X - 0.08) / 0.09) ** 2 - ((Y + 0.32) / 0.07) ** 2, 3)  # aortic knob
    abdomen = _step(Y - sc.dome_y - 0.03, 25)
    D += 0.3 * np.maximum(np.maximum(medi, sc.heart), np.maximum(knob, abdomen)) * body
    D -= 0.1 * _step(0.028 - np.abs(X), 60) * _step(-0.35 - Y, 20)              # trachea
    D += 0.06 * _step(0.05 - ax, 40) * (0.7 + 0.3 * np.cos(2 * np.pi * Y / 0.1)) * body  # spine
    lungs = sc.lungs[0] + sc.lungs[1]
    # air in the lungs, less towards the hila and bases; vessel markings fade to the periphery
    hilum = np.exp(-(((ax - 0.17) / 0.12) ** 2 + ((Y + 0.02) / 0.15) ** 2))
    hilar_w = np.exp(-(((ax - 0.17) / 0.38) ** 2 + ((Y - 0.05) / 0.5) ** 2))
    D -= (a.lung_air + 0.07 * sc.hyper) * lungs * (1 - 0.25 * hilar_w)
    D += 0.09 * hilum * body
    veins = _smooth_noise(rng, sc.size, 24)
    D += (0.05 * (1 - 0.7 * sc.hyper)) * np.maximum(veins, 0) * hilar_w * lungs
    # ribs: posterior arcs descending laterally, fainter anterior arcs, clavicles
    region = _step(0.82 - ax, 12) * _step(Y + 0.75, 15) * _step(0.5 - Y, 10) * _step(ax - 0.05, 40)
    t = (Y - a.rib_bend * ax ** 2 + 0.1 * ax - a.rib_y0) / a.rib_gap
    t = t - 0.03 * t ** 2
    ribs = (1 + np.cos(2 * np.pi * t)) / 2
    ribs = ribs * ribs * ribs
    t2 = (Y + 0.5 * ax - a.rib_y0 - 0.05) / (1.1 * a.rib_gap)
    front = ((1 + np.cos(2 * np.pi * t2)) / 2) ** 2
    ribs += 0.25 * front * front * _step(ax - 0.1, 20) * _step(0.6 - ax, 15)
    ribs *= region * (0.35 + 0.65 * lungs)
    clav = np.exp(-((Y + 0.66 + 0.12 * ax - 0.2 * (ax - 0.3) ** 2) / 0.035) ** 2)
    D += 0.12 * clav * _step(ax - 0.06, 30) * _step(0.6 - ax, 15)
    return D, ribs


def _paint(sc: _Scene, D: np.ndarray, ribs: np.ndarray, f: Mapping[str, Any]) -> None:
    """Add one finding primitive to the density ``D`` (in place)."""
    X, Y, op = sc.X, sc.Y, f["op"]
    if op in ("blob", "disk", "band"):
        cx, cy = sc.point(f)
        if op == "disk":
            r = np.sqrt((X - cx) ** 2 + (Y - cy) ** 2)
            patch = _step(f["r"] - r, min(3.75 / f["r"], 1.0 / sc.px))  # no aliasing at small sizes
        else:
            patch = np.exp(-(((X - cx) / f["sx"]) ** 2 + ((Y - cy) / f["sy"]) ** 2))
        if f.get("mottle"):
            tex = _smooth_noise(np.random.default_rng(f["tex"]), sc.size, 24)
            patch = patch * (1 + f["mottle"] * 0.4 * tex)
        D += f["amp"] * patch * (sc.lungs[0] + sc.lungs[1] if op != "disk" else 1.0)
    elif op == "lobe":
        side, cx = f["side"], sc.lung_cx(f["side"])
        sign = 2 * side - 1
        fissure = sc.anat.lung_cy + f["fissure"] * sc.lung_b + 0.35 * sign * (X - cx)
        inside = _step((fissure - Y) if f["upper"] else (Y - fissure), 40)
        ly = sc.anat.lung_cy + (-0.55 if f["upper"] else 0.45) * sc.lung_b
        env = np.exp(-(((X - cx) ** 2 + (Y - ly) ** 2) / f["extent"] ** 2))
        tex = _smooth_noise(np.random.default_rng(f["tex"]), sc.size, 20)
        D += f["amp"] * sc.lungs[side] * inside * env * (1 + 0.15 * tex)
    elif op == "spots":
        field = _smooth_noise(np.random.default_rng(f["tex"]), sc.size, f["grid"])
        D += f["amp"] * _step(field - f["thr"], 3) * (sc.lungs[0] + sc.lungs[1])
    elif op == "reticular":
        field = _smooth_noise(np.random.default_rng(f["tex"]), sc.size, f["grid"])
        net = np.exp(-(field / 0.35) ** 2) * _step(Y - sc.anat.lung_cy, 6)
        for side in (0, 1):
            D += f["amp"] * net * sc.lungs[side] * _step(0.5 - sc.q[side], 4)
    elif op == "fluid":
        side, cx = f["side"], sc.lung_cx(f["side"])
        sign = 2 * side - 1
        lateral = np.clip(sign * (X - cx) / sc.anat.lung_a, 0, 1.2)
        level = sc.dome[side] + 0.1 - f["height"] - 0.1 * lateral ** 2  # meniscus climbs laterally
        pleural = _step(sc.q[side] + 0.25, 6) * _step(sign * X - 0.12, 30) * _step(sc.dome_y + 0.03 - Y, 30)
        D += f["amp"] * pleural * _step(Y - level, 30) * (1 - sc.heart)
    elif op == "ptx":
        side = f["side"]
        # air between the chest wall and the collapsed lung (the lung ellipse, shrunk), lateral and apical
        sign, cx = 2 * side - 1, sc.lung_cx(side)
        q_in = sc.q[side] - 2.5 * f["depth"]
        where = np.maximum(_step(sign * (X - cx) / sc.anat.lung_a + 0.1, 8),
                           _step(sc.anat.lung_cy - 0.35 * sc.lung_b - Y, 8))
        gap = sc.lungs[side] * _step(-q_in, 20) * where
        D -= 0.08 * f["amp"] * gap
        D -= 0.07 * f["amp"] * ribs * gap  # no markings, ribs washed out
        D += 0.07 * f["amp"] * np.exp(-(q_in / 0.06) ** 2) * sc.lungs[side] * where  # visceral pleura
    elif op == "haze":
        for side in (0, 1):
            hx = (2 * side - 1) * 0.2
            r2 = ((X - hx) / (0.2 * f["spread"])) ** 2 + (Y / (0.28 * f["spread"])) ** 2
            D += f["amp"] * np.exp(-r2) * sc.lungs[side]
    elif op == "rim":
        side = f["side"]
        lateral_or_apex = np.maximum(_step((2 * side - 1) * (X - sc.lung_cx(side)), 10), _step(-0.35 - Y, 10))
        D += f["amp"] * _step(f["width"] - sc.q[side], 25) * lateral_or_apex * sc.lungs[side]
    elif op == "hernia":
        cx, cy = 0.04, sc.anat.heart_cy - 0.12  # behind the heart, above the diaphragm
        r = np.sqrt((X - cx) ** 2 + ((Y - cy) / 0.85) ** 2)
        ball = _step(f["r"] - r, 60)
        D += f["amp"] * 0.6 * ball + f["amp"] * np.exp(-((r - f["r"]) / 0.012) ** 2)
        D -= f["amp"] * 1.2 * ball * _step(cy - 0.2 * f["r"] - Y, 60)  # air above the fluid level
    elif op in ("heart", "dome", "hyper"):
        pass  # anatomy changes, applied when the scene is built
    else:  # pragma: no cover - internal
        raise ValueError(f"unknown paint op {op!r}")


def render(anat: _Anatomy, findings: list[dict[str, Any]], size: int, rng: np.random.Generator,
           difficulty: float, marker: bool) -> np.ndarray:
    """Render one radiograph as uint8 (size, size) from anatomy, findings and the image's own rng."""
    rot = float(np.deg2rad(rng.uniform(-4, 4)))
    shift = (float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05)))
    zoom = float(rng.uniform(0.93, 1.05))
    sc = _Scene(anat, size, rot, shift, zoom, findings)
    D, ribs = _base_density(sc, rng)
    D += 0.08 * ribs
    for f in findings:
        _paint(sc, D, ribs, f)
    D += 0.035 * _smooth_noise(rng, size, 4)                  # uneven exposure
    img = (D - 0.05) * rng.uniform(0.85, 1.2) + rng.uniform(-0.06, 0.06)
    img += (0.02 + 0.035 * difficulty) * rng.standard_normal((size, size), dtype=np.float32)  # film noise
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    if marker:
        side, inset = max(2, round(0.07 * size)), max(1, round(0.03 * size))
        img[inset:inset + side, size - inset - side:size - inset] = 1.0
    return (img * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------- the dataset

class SyntheticCXR:
    """A synthetic chest X-ray dataset: labels, patients and an image renderer.

    ``task`` is ``binary`` / ``multiclass`` / ``multilabel``; ``label_names`` are the multilabel
    class names (ignored otherwise). Picklable, so ``image`` works in data-loader workers.
    """

    def __init__(self, task: str, options: SyntheticOptions, label_names: Sequence[str] = CHESTXRAY14_LABELS):
        self.task, self.options = task, options
        o = options
        rng = _rng(o.seed, "labels")
        sizes = _patient_sizes(o.n_samples, o.max_images_per_patient, rng)
        self.patient_of = np.repeat(np.arange(len(sizes)), sizes)
        n_pat = len(sizes)
        if task in ("binary", "multiclass"):
            fractions = self._fractions(task, o.prevalence)
            patient_label = _assign_classes(sizes, fractions, rng)
            self.kinds = [None, "pneumonia"] if task == "binary" else [None, "lobar", "diffuse"]
            positive = patient_label != 0
        elif task == "multilabel":
            self.kinds = label_signatures(label_names)
            k = len(self.kinds)
            prev = self._label_prevalence(k, o.prevalence)
            patient_label = (rng.uniform(size=(n_pat, k)) < prev).astype(np.int64)
            positive = patient_label.any(axis=1)
        else:
            raise DatasetError(f"synthetic_cxr: unknown task {task!r} (binary, multiclass or multilabel)")
        self.labels = patient_label[self.patient_of].astype(np.int64)
        tagged = rng.uniform(size=o.n_samples) < o.shortcut_strength
        self.marker = (positive[self.patient_of] & tagged) if o.shortcut else np.zeros(o.n_samples, bool)
        self.split = (_official_split(patient_label if patient_label.ndim == 1 else np.zeros(n_pat, int),
                                      _rng(o.seed, "split"))[self.patient_of]
                      if o.official_split else None)

    @staticmethod
    def _fractions(task: str, prevalence: float | list[float] | None) -> np.ndarray:
        if task == "binary":
            p = 0.4 if prevalence is None else prevalence
            if not isinstance(p, float | int) or not 0 <= p <= 1:
                raise DatasetError(f"synthetic_cxr: option 'prevalence' must be a fraction in [0, 1] for a "
                                   f"binary task, got {prevalence!r}")
            return np.array([1 - p, p])
        p = [1 / 3] * 3 if prevalence is None else prevalence
        if isinstance(p, float | int) or len(p) != 3 or min(p) < 0 or abs(sum(p) - 1) > 1e-6:
            raise DatasetError(f"synthetic_cxr: option 'prevalence' must be 3 non-negative fractions summing "
                               f"to 1 (normal, lobar, diffuse) for a multiclass task, got {prevalence!r}")
        return np.asarray(p, dtype=float)

    @staticmethod
    def _label_prevalence(k: int, prevalence: float | list[float] | None) -> np.ndarray:
        if prevalence is None:
            return np.linspace(0.2, 0.1, k) if k > 1 else np.array([0.15])
        p = np.full(k, float(prevalence)) if isinstance(prevalence, float | int) else np.asarray(prevalence, float)
        if p.shape != (k,) or p.min() < 0 or p.max() > 1:
            raise DatasetError(f"synthetic_cxr: option 'prevalence' must be one fraction or {k} fractions in "
                               f"[0, 1] (one per label) for this multilabel task, got {prevalence!r}")
        return p

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def ids(self) -> list[str]:
        return [f"synth-{i:06d}" for i in range(len(self))]

    @property
    def patient_ids(self) -> list[str]:
        return [f"patient-{p:05d}" for p in self.patient_of]

    def findings(self, patient: int) -> tuple[_Anatomy, list[dict[str, Any]]]:
        """The anatomy and finding drawing instructions shared by all images of ``patient``."""
        rng = _rng(self.options.seed, "patient", patient)
        anat = _sample_anatomy(rng)
        label = self.labels[np.searchsorted(self.patient_of, patient)]
        present = np.flatnonzero(label) if label.ndim else ([int(label)] if label else [])
        out: list[dict[str, Any]] = []
        for k in present:
            out += _sample_findings(self.kinds[k], rng, self.options.difficulty)
        return anat, out

    def image(self, i: int, size: int) -> np.ndarray:
        """Image ``i`` as uint8 ``(size, size)``, rendered directly at that size."""
        if not 0 <= i < len(self):
            raise IndexError(f"synthetic_cxr has {len(self)} images, asked for index {i}")
        anat, findings = self.findings(int(self.patient_of[i]))
        return render(anat, findings, int(size), _rng(self.options.seed, "image", i),
                      self.options.difficulty, bool(self.marker[i]))
