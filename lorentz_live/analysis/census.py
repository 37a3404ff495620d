"""Live texture census: bubbles/skyrmions and stripes in one magnetic phase map.

Pure numpy, no torch, no Qt: called by the live runner for every result (a few
ms at 128-256 px; ``make bench-census``) and usable offline on any phi_m map.

What is measured (axes ``[y, x]``, docs/conventions.md):

* **Bubbles.** A Bloch bubble is a place where the in-plane induction B
  circulates.  Candidates are extrema of the scale-normalised Laplacian of
  Gaussian of phi_m over a range of scales (a bubble's phase is a plateau, so
  the response peaks at sigma = R / sqrt 2).  A candidate counts as a bubble when
  B circulates around it on a ring: the tangential component B . (z x r_hat) has
  the same sign in each of 8 angular sectors and carries most of |B| there.
  Its radius is where the azimuthal mean of that tangential component peaks
  (the wall, where the in-plane moment is largest); its **handedness** is the
  sign of the circulation: +1 counter-clockwise (helicity +pi/2,
  ``lorentz_live.physics.BLOCH_CCW``), -1 clockwise.  Neel bubbles give no
  phase contrast at zero tilt and are not seen.
* **Hexatic order** psi_6 = (1/6) sum_k exp(6 i theta_jk) over the 6 nearest
  neighbours of each bubble: ``hexatic_order`` = mean |psi_6| (local order, 1
  for a perfect lattice, about 0.4 for random points), ``hexatic_global`` =
  |mean psi_6| (one orientation over the field of view).
* **Period.** The dominant spatial period of phi_m from the peak of its
  radially averaged power spectrum: the stripe period of a stripe or labyrinth
  phase (and about the lattice row spacing of a bubble lattice).

Accuracy on simulated maps with known answers: docs/census.md
(``python benchmarks/census.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lorentz_live.physics.constants import FLUX_QUANTUM_WB, NM

#: Angular sectors in which B must circulate with one sense.
SECTORS = 8
#: Fraction of |B| on the ring that the circulating component must carry.
MIN_COHERENCE = 0.5
#: A bubble's core must differ from its surroundings by this many pixel-noise std.
NOISE_FACTOR = 5.0
#: Every sector's circulation must reach this fraction of the ring's mean.
_UNIFORMITY = 0.6
#: Samples per ring, radii per profile.
_ANGLES = 32
_RADII = 20
#: Candidates weaker than this fraction of the strongest are not examined; at most this
#: many (or one per 64 px of the map).
_CANDIDATE_FLOOR = 0.05
#: Scales at least this wide (sigma, px) are computed on the 2 x 2 binned map.
_COARSE_SIGMA_PX = 4.0
_MAX_CANDIDATES = 300


@dataclass(frozen=True)
class FoundBubble:
    """One bubble: centre (px, [y, x]), radius (nm), handedness (+1 ccw, -1 cw), contrast (rad)."""

    y_px: float
    x_px: float
    radius_nm: float
    handedness: int
    contrast_rad: float
    coherence: float


@dataclass(frozen=True)
class Census:
    """Texture census of one map; lengths in nm, ``None`` where undefined.

    phase : ``"bubbles"`` (bubbles carry most of |B|^2), ``"stripes"`` (no
    bubbles, a periodic pattern), ``"mixed"`` (both) or ``"none"``.
    """

    count: int
    ccw: int
    cw: int
    diameter_mean_nm: float | None
    diameter_std_nm: float | None
    hexatic_order: float | None
    hexatic_global: float | None
    period_nm: float | None
    bubble_fraction: float
    phase: str
    compute_s: float
    bubbles: list[FoundBubble] = field(default_factory=list)

    @property
    def handedness(self) -> float | None:
        """(ccw - cw) / count: +1 all counter-clockwise, -1 all clockwise."""
        return (self.ccw - self.cw) / self.count if self.count else None

    def to_header(self) -> dict[str, Any]:
        """The msgpack-able map published in the results header under ``census``."""
        rounded = {
            "count": self.count,
            "ccw": self.ccw,
            "cw": self.cw,
            "handedness": self.handedness,
            "diameter_mean_nm": self.diameter_mean_nm,
            "diameter_std_nm": self.diameter_std_nm,
            "hexatic_order": self.hexatic_order,
            "hexatic_global": self.hexatic_global,
            "period_nm": self.period_nm,
            "bubble_fraction": self.bubble_fraction,
            "phase": self.phase,
            "compute_s": self.compute_s,
        }
        return {
            key: (round(value, 6) if isinstance(value, float) else value)
            for key, value in rounded.items()
        }


def induction_t_nm(phi_m: np.ndarray, pixel_size_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """(B_x, B_y) in T nm from phi_m in rad (SIPRAD eq. 4, as ``physics.integrated_induction``)."""
    dphi_dy, dphi_dx = np.gradient(np.asarray(phi_m, dtype=np.float64), pixel_size_nm * NM)
    scale = FLUX_QUANTUM_WB / math.pi / NM
    return -scale * np.asarray(dphi_dy), scale * np.asarray(dphi_dx)


def texture_census(
    phi_m: np.ndarray,
    pixel_size_nm: float,
    *,
    b_x: np.ndarray | None = None,
    b_y: np.ndarray | None = None,
    min_diameter_nm: float | None = None,
    max_diameter_nm: float | None = None,
    min_contrast_rad: float = 0.02,
    periodic: bool = False,
) -> Census:
    """Count and measure the bubbles of a phi_m map [H, W] (rad) on pixels of ``pixel_size_nm``.

    Parameters
    ----------
    b_x, b_y : the induction (T nm) if already computed; else from phi_m.
    min_diameter_nm, max_diameter_nm : bubble sizes searched (default 4 px to
        a third of the shorter side).
    min_contrast_rad : smallest phase step between a bubble's core and its
        surroundings that counts (rejects circulating noise above Tc); the
        floor is raised to ``NOISE_FACTOR`` x the pixel-scale noise of phi_m.
    periodic : the map wraps around (simulations); else rings that leave the
        field of view are judged on the sectors inside it.
    """
    start = time.perf_counter()
    phi = np.asarray(phi_m, dtype=np.float64)
    if phi.ndim != 2 or min(phi.shape) < 8:
        raise ValueError(f"phi_m must be a 2D map of at least 8 x 8 px, got shape {phi.shape}")
    if not np.isfinite(phi).all():
        raise ValueError("phi_m has NaN or infinite values")
    if b_x is None or b_y is None:
        b_x, b_y = induction_t_nm(phi, pixel_size_nm)
    b_x = np.asarray(b_x, dtype=np.float64)
    b_y = np.asarray(b_y, dtype=np.float64)
    phi = phi - phi.mean()
    height, width = phi.shape
    r_min = max(3.0, 0.5 * (min_diameter_nm or 0.0) / pixel_size_nm)
    r_max = min(height, width) / 6.0
    if max_diameter_nm is not None:
        r_max = min(r_max, 0.5 * max_diameter_nm / pixel_size_nm)
    radii = _geometric(r_min, max(r_min, r_max), 1.5)

    strength, scale_index = _log_scale_space(phi, radii, periodic)
    candidates = _local_maxima(strength, scale_index, radii, periodic)
    magnitude = np.hypot(b_x, b_y)
    # pixel-scale noise of phi (robust: median absolute neighbour difference)
    noise_rad = 1.4826 * float(np.median(np.abs(np.diff(phi, axis=1)))) / math.sqrt(2.0)
    floor = max(min_contrast_rad, NOISE_FACTOR * noise_rad)
    found = _validate(phi, b_x, b_y, candidates, pixel_size_nm, periodic, floor)
    found = _suppress_overlaps(found, pixel_size_nm, (height, width), periodic)

    count = len(found)
    diameters = np.array([2.0 * b.radius_nm for b in found])
    ccw = sum(1 for b in found if b.handedness > 0)
    order_local, order_global = _hexatic(found, (height, width), periodic)
    fraction = _bubble_fraction(found, magnitude, pixel_size_nm, periodic)
    period = _dominant_period_nm(phi, pixel_size_nm, periodic)
    if count and fraction >= 0.5:
        phase = "bubbles"
    elif count:
        phase = "mixed"
    else:
        phase = "stripes" if period is not None else "none"
    if phase == "bubbles":
        period = None  # a lattice of bubbles of both senses has no meaningful dominant period
    return Census(
        count=count,
        ccw=ccw,
        cw=count - ccw,
        diameter_mean_nm=float(diameters.mean()) if count else None,
        diameter_std_nm=float(diameters.std()) if count else None,
        hexatic_order=order_local,
        hexatic_global=order_global,
        period_nm=period,
        bubble_fraction=fraction,
        phase=phase,
        compute_s=time.perf_counter() - start,
        bubbles=found,
    )


def _geometric(low: float, high: float, ratio: float) -> np.ndarray:
    count = max(1, math.ceil(math.log(high / low) / math.log(ratio)) + 1)
    return low * ratio ** np.arange(count)


def _log_responses(field: np.ndarray, sigmas: list[float], pad: int):
    """|sigma^2 lap (G_sigma * field)| for each sigma (px), float32, mirror-padded by ``pad``."""
    height, width = field.shape
    padded = np.pad(field, pad, mode="reflect") if pad else field
    spectrum = np.fft.rfft2(padded.astype(np.float32))
    k_y = np.fft.fftfreq(padded.shape[0]).astype(np.float32)[:, None]
    k_x = np.fft.rfftfreq(padded.shape[1]).astype(np.float32)[None, :]
    k2 = k_y**2 + k_x**2
    for sigma in sigmas:
        a = np.float32(2.0 * math.pi**2 * sigma**2)
        response = np.fft.irfft2(spectrum * (2.0 * a * k2 * np.exp(-a * k2)), s=padded.shape)
        yield np.abs(response[pad : pad + height, pad : pad + width])


def _log_scale_space(
    phi: np.ndarray, radii: np.ndarray, periodic: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Max over scales of |sigma^2 lap (G_sigma * phi)| and the index of the scale it came from.

    Scales of sigma >= 4 px are computed on the 2 x 2 binned map (the
    scale-normalised response does not change; the FFTs cost a quarter).
    """
    height, width = phi.shape
    sigmas = [float(r) / math.sqrt(2.0) for r in radii]
    fine = [s for s in sigmas if s < _COARSE_SIGMA_PX]
    coarse = [s / 2.0 for s in sigmas if s >= _COARSE_SIGMA_PX]
    pad = 0 if periodic else int(min(1.5 * radii[-1], height // 2, width // 2))
    responses = list(_log_responses(phi, fine, pad))
    if coarse:
        even = phi[: height // 2 * 2, : width // 2 * 2]
        binned = even.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))
        for response in _log_responses(binned, coarse, (pad // 2) if pad else 0):
            full = np.repeat(np.repeat(response, 2, axis=0), 2, axis=1)
            responses.append(np.pad(full, ((0, height % 2), (0, width % 2)), mode="edge"))
    stack = np.stack(responses)
    index = np.argmax(stack, axis=0).astype(np.int32)
    return np.take_along_axis(stack, index[None], axis=0)[0].astype(np.float64), index


def _local_maxima(
    strength: np.ndarray, scale_index: np.ndarray, radii: np.ndarray, periodic: bool
) -> list[tuple[int, int, float]]:
    """(y, x, scale radius px) of the maxima of their 5 x 5 neighbourhood, strongest first.

    Ties (flat ridges) keep one pixel: a pixel must beat the neighbours before
    it in raster order and equal or beat those after it.
    """
    padded = np.pad(strength, 2, mode="wrap") if periodic else np.pad(strength, 2, mode="edge")
    height, width = strength.shape
    peak = strength > _CANDIDATE_FLOOR * strength.max()
    for dy in range(5):
        for dx in range(5):
            if dy == 2 and dx == 2:
                continue
            neighbour = padded[dy : dy + height, dx : dx + width]
            before = dy < 2 or (dy == 2 and dx < 2)
            peak &= strength > neighbour if before else strength >= neighbour
    ys, xs = np.nonzero(peak)
    order = np.argsort(-strength[ys, xs], kind="stable")[
        : max(_MAX_CANDIDATES, strength.size // 64)
    ]
    ys, xs = ys[order], xs[order]
    scale = radii[scale_index[ys, xs]]
    # a weaker maximum closer than 0.7 scale radii to a stronger one is the same feature
    dy, dx = _offset(ys[None, :] - ys[:, None], xs[None, :] - xs[:, None], strength.shape, periodic)
    near = np.hypot(dy, dx) < 0.7 * np.maximum(scale[:, None], scale[None, :])
    keep = ~np.triu(near, k=1).any(axis=0)
    return [
        (int(y), int(x), float(r)) for y, x, r in zip(ys[keep], xs[keep], scale[keep], strict=True)
    ]


def _sample(image: np.ndarray, y: np.ndarray, x: np.ndarray, periodic: bool) -> np.ndarray:
    """Bilinear samples at (y, x) px (wrapped if periodic, else clamped to the edge)."""
    height, width = image.shape
    if periodic:
        y, x = np.mod(y, height), np.mod(x, width)
    else:
        y, x = np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    y0, x0 = y0 % height, x0 % width  # np.mod of a tiny negative can round to the size
    if periodic:
        y1, x1 = (y0 + 1) % height, (x0 + 1) % width
    else:
        y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    return (
        image[y0, x0] * (1 - fy) * (1 - fx)
        + image[y0, x1] * (1 - fy) * fx
        + image[y1, x0] * fy * (1 - fx)
        + image[y1, x1] * fy * fx
    )


def _validate(  # noqa: PLR0917
    phi: np.ndarray,
    b_x: np.ndarray,
    b_y: np.ndarray,
    candidates: list[tuple[int, int, float]],
    pixel_size_nm: float,
    periodic: bool,
    min_contrast_rad: float,
) -> list[FoundBubble]:
    """The candidates around which B circulates on a ring of uniform strength (all at once)."""
    if not candidates:
        return []
    height, width = phi.shape
    angles = np.linspace(0.0, 2.0 * math.pi, _ANGLES, endpoint=False)
    cos_a, sin_a = np.cos(angles), np.sin(angles)
    centre = np.array([(y, x) for y, x, _ in candidates], dtype=np.float64)
    scale = np.array([s for _, _, s in candidates])
    steps = np.linspace(0.3, 2.5, _RADII)
    r = scale[:, None] * steps[None, :]  # [n, radii] px
    ys = centre[:, 0, None, None] + r[:, :, None] * sin_a  # [n, radii, angles]
    xs = centre[:, 1, None, None] + r[:, :, None] * cos_a
    inside = (ys >= 0) & (ys <= height - 1) & (xs >= 0) & (xs <= width - 1)
    if periodic:
        inside[:] = True
    bx, by = _sample(b_x, ys, xs, periodic), _sample(b_y, ys, xs, periodic)
    tangential = (-sin_a * bx + cos_a * by) * inside  # B . (z x r_hat): counter-clockwise > 0
    seen = np.maximum(inside.sum(axis=2), 1)
    profile = tangential.sum(axis=2) / seen  # [n, radii]
    rows = np.arange(len(candidates))
    peak = np.argmax(np.abs(profile), axis=1)
    sense = np.sign(profile[rows, peak])
    # sector means of the circulating component on the ring at the peak radius
    ring_t = sense[:, None] * tangential[rows, peak]  # [n, angles]
    ring_in = inside[rows, peak]
    ring_b = np.hypot(bx[rows, peak], by[rows, peak]) * ring_in
    sector = (np.arange(_ANGLES) * SECTORS) // _ANGLES
    onehot = (sector[:, None] == np.arange(SECTORS)[None, :]).astype(np.float64)
    sector_t = ring_t @ onehot / (_ANGLES / SECTORS)
    sector_full = (ring_in @ onehot) >= _ANGLES / SECTORS
    ring_mean = ring_t.sum(axis=1) / np.maximum(ring_in.sum(axis=1), 1)
    uniform = np.where(sector_full, sector_t >= _UNIFORMITY * ring_mean[:, None], True).all(axis=1)
    enough = sector_full.sum(axis=1) >= SECTORS - 3
    coherence = ring_t.sum(axis=1) / np.maximum(ring_b.sum(axis=1), 1e-300)
    interior = (peak > 0) & (peak < _RADII - 1)
    ok = interior & (sense != 0) & uniform & enough & (coherence >= MIN_COHERENCE)
    found = []
    for i in np.nonzero(ok)[0]:
        radius_px = _parabolic_peak(np.abs(profile[i]), int(peak[i]), r[i])
        out_r = 1.4 * radius_px + 1.0
        ring_y = centre[i, 0] + out_r * sin_a
        ring_x = centre[i, 1] + out_r * cos_a
        keep = periodic | ((ring_y >= 0) & (ring_y <= height - 1))
        keep &= periodic | ((ring_x >= 0) & (ring_x <= width - 1))
        around = _sample(phi, ring_y[keep], ring_x[keep], periodic)
        contrast = abs(phi[int(centre[i, 0]), int(centre[i, 1])] - around.mean())
        if contrast < min_contrast_rad:
            continue
        found.append(
            FoundBubble(
                float(centre[i, 0]),
                float(centre[i, 1]),
                radius_px * pixel_size_nm,
                int(sense[i]),
                float(contrast),
                float(coherence[i]),
            )
        )
    return found


def _parabolic_peak(values: np.ndarray, index: int, positions: np.ndarray) -> float:
    if 0 < index < len(values) - 1:
        left, centre, right = values[index - 1 : index + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            offset = 0.5 * (left - right) / curvature
            step = positions[1] - positions[0]
            return float(positions[index] + np.clip(offset, -1, 1) * step)
    return float(positions[index])


def _suppress_overlaps(
    found: list[FoundBubble], pixel_size_nm: float, shape: tuple[int, int], periodic: bool
) -> list[FoundBubble]:
    """Keep the strongest of bubbles whose centres lie inside another's wall."""
    kept: list[FoundBubble] = []
    for bubble in sorted(found, key=lambda b: -b.contrast_rad):
        clear = True
        for other in kept:
            dy, dx = _offset(other.y_px - bubble.y_px, other.x_px - bubble.x_px, shape, periodic)
            limit = 0.8 * max(bubble.radius_nm, other.radius_nm) / pixel_size_nm
            if math.hypot(dy, dx) < limit:
                clear = False
                break
        if clear:
            kept.append(bubble)
    return kept


def _offset(dy, dx, shape: tuple[int, int], periodic: bool):
    if periodic:
        dy = (dy + shape[0] / 2) % shape[0] - shape[0] / 2
        dx = (dx + shape[1] / 2) % shape[1] - shape[1] / 2
    return dy, dx


def _hexatic(
    found: list[FoundBubble], shape: tuple[int, int], periodic: bool
) -> tuple[float | None, float | None]:
    """(mean |psi_6|, |mean psi_6|) over bubbles whose 6 neighbours are all in view."""
    if len(found) < 7:
        return None, None
    yx = np.array([(b.y_px, b.x_px) for b in found])
    dy, dx = _offset(
        yx[None, :, 0] - yx[:, None, 0], yx[None, :, 1] - yx[:, None, 1], shape, periodic
    )
    distance = np.hypot(dy, dx)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :6]
    rows = np.arange(len(found))[:, None]
    angles = np.arctan2(dy[rows, nearest], dx[rows, nearest])
    psi = np.exp(6j * angles).mean(axis=1)
    if periodic:
        use = np.ones(len(found), dtype=bool)
    else:  # a bubble at the edge has neighbours only on one side
        reach = distance[rows, nearest].max(axis=1)
        margin = np.minimum.reduce(
            [yx[:, 0], yx[:, 1], shape[0] - 1 - yx[:, 0], shape[1] - 1 - yx[:, 1]]
        )
        use = margin >= reach
    if not use.any():
        return None, None
    return float(np.abs(psi[use]).mean()), float(np.abs(psi[use].mean()))


def _bubble_fraction(
    found: list[FoundBubble], magnitude: np.ndarray, pixel_size_nm: float, periodic: bool
) -> float:
    """Share of sum |B|^2 within 1.5 radii of a found bubble (each disc in its bounding box)."""
    energy = magnitude**2
    total = float(energy.sum())
    if not found or total <= 0:
        return 0.0
    height, width = magnitude.shape
    covered = np.zeros(magnitude.shape, dtype=bool)
    for bubble in found:
        reach = 1.5 * bubble.radius_nm / pixel_size_nm
        rows = np.arange(math.floor(bubble.y_px - reach), math.ceil(bubble.y_px + reach) + 1)
        cols = np.arange(math.floor(bubble.x_px - reach), math.ceil(bubble.x_px + reach) + 1)
        inside = (rows[:, None] - bubble.y_px) ** 2 + (cols[None, :] - bubble.x_px) ** 2
        inside = inside <= reach**2
        if periodic:
            rows, cols = rows % height, cols % width
        else:
            keep_r, keep_c = (rows >= 0) & (rows < height), (cols >= 0) & (cols < width)
            rows, cols, inside = rows[keep_r], cols[keep_c], inside[np.ix_(keep_r, keep_c)]
        covered[np.ix_(rows, cols)] |= inside
    return float(energy[covered].sum() / total)


def _dominant_period_nm(phi: np.ndarray, pixel_size_nm: float, periodic: bool) -> float | None:
    """Period of the peak of the radially averaged power spectrum; None if there is no peak."""
    height, width = phi.shape
    data = phi
    if not periodic:
        data = phi * np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.rfft2(data)) ** 2
    k_y = np.fft.fftfreq(height)[:, None] * height  # in cycles per field of view (y)
    k_x = np.fft.rfftfreq(width)[None, :] * width
    # radial bins in cycles per min(H, W) pixels
    side = min(height, width)
    k = np.hypot(k_y * side / height, k_x * side / width)
    bins = np.rint(k).astype(int)
    weights = np.ones_like(power)
    weights[:, 1:-1] = 2.0  # rfft: the columns between 0 and Nyquist stand for two
    sums = np.bincount(bins.ravel(), (power * weights).ravel())
    counts = np.bincount(bins.ravel(), weights.ravel())
    radial = sums[: side // 2] / np.maximum(counts[: side // 2], 1)
    if len(radial) < 6:
        return None
    low = 2  # below two periods per field of view there is no period to speak of
    peak = low + int(np.argmax(radial[low:]))
    background = np.median(radial[low:])
    if not radial[peak] > 5.0 * background or peak >= len(radial) - 1:
        return None
    k_peak = _parabolic_peak(radial, peak, np.arange(len(radial), dtype=float))
    return float(side * pixel_size_nm / k_peak)


def census_header(
    phi_m: np.ndarray, pixel_size_nm: float, *, max_side_px: int = 512
) -> dict[str, Any]:
    """:meth:`Census.to_header` of a map, or ``{"phase": "error", "error": ...}``: never raises.

    Maps wider than ``max_side_px`` are block-averaged by the smallest integer
    factor that brings them under it (the census time grows with the area;
    bubbles narrower than about 6 binned pixels are then not seen); the header
    then has ``binned`` = that factor.
    """
    try:
        phi = np.asarray(phi_m, dtype=np.float64)
        factor = max(1, math.ceil(max(phi.shape) / max_side_px)) if phi.ndim == 2 else 1
        if factor > 1:
            height, width = (phi.shape[0] // factor) * factor, (phi.shape[1] // factor) * factor
            phi = phi[:height, :width].reshape(height // factor, factor, width // factor, factor)
            phi = phi.mean(axis=(1, 3))
        header = texture_census(phi, pixel_size_nm * factor).to_header()
        if factor > 1:
            header["binned"] = factor
        return header
    except (ValueError, FloatingPointError) as error:
        return {"phase": "error", "error": str(error)[:200]}
