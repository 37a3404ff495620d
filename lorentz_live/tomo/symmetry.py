"""Symmetries of the tilt-series problem, used to augment MagNet's training data.

Mirroring the sample in x, y or z and swapping x and y map a symmetric pair of
tilt series (the same angles about x and about y, symmetric about 0) onto a
symmetric pair of the mirrored sample, so VFET commutes with them and a pair
(B_in, B_true) transformed together is another valid training pair.  B is an
axial vector: under an improper map P it becomes det(P) P B(P^-1 r).  Mirrors
are about the tilt axes, the voxel of index n // 2 (docs/conventions.md,
"Tomography"); the voxel that falls off one face wraps to the other (samples do
not touch the faces).  Volumes are [..., 3, Z, Y, X] or scalar [..., Z, Y, X].
"""

from __future__ import annotations

import torch

#: Number of distinct transforms: 3 mirror bits and the x/y swap.
COUNT = 16
#: The transforms training draws from: identity, mirror z, swap x/y, both.  With them
#: VFET commutes to < 0.2 % NRMSE inside the material and < 3 % over the whole box
#: (tests/tomo/test_symmetry.py).  The x and y mirrors also commute inside the
#: material, but not in the stray field around it (up to 22 % of the box's norm):
#: the image-plane steps of VFET (mirror-extended derivatives, padded phase
#: integration) are symmetric about (n - 1) / 2, the tilt axes about n // 2.
TRAINING = (0, 4, 8, 12)


#: All transforms, averaged over by MagNet's inference (test-time augmentation).
ALL = tuple(range(COUNT))


def inverse(index: int) -> int:
    """Index of the transform that undoes transform ``index``.

    Mirrors are their own inverses and commute with each other; a transform with
    the x/y swap applies the mirrors first and the swap last, so its inverse
    swaps first, i.e. mirrors the other in-plane axis.
    """
    if not 0 <= index < COUNT:
        raise ValueError(f"transform index must be in [0, {COUNT}), got {index}")
    if index & 8:
        return (index & ~3) | ((index & 1) << 1) | ((index & 2) >> 1)
    return index


def _mirror(volume: torch.Tensor, dim: int) -> torch.Tensor:
    """Index i -> 2 (n // 2) - i (mod n) along ``dim``."""
    n = volume.shape[dim]
    return torch.roll(torch.flip(volume, dims=(dim,)), 2 * (n // 2) - n + 1, dims=(dim,))


def transform_scalar(volume: torch.Tensor, index: int) -> torch.Tensor:
    """Scalar volume [..., Z, Y, X] under transform ``index`` in [0, :data:`COUNT`)."""
    for bit, dim in ((1, -1), (2, -2), (4, -3)):
        if index & bit:
            volume = _mirror(volume, dim)
    if index & 8:
        volume = volume.transpose(-1, -2)
    return volume


def transform_field(field: torch.Tensor, index: int) -> torch.Tensor:
    """Axial vector field [..., 3, Z, Y, X] = (B_x, B_y, B_z) under transform ``index``."""
    if not 0 <= index < COUNT:
        raise ValueError(f"transform index must be in [0, {COUNT}), got {index}")
    components = [transform_scalar(field[..., i, :, :, :], index) for i in range(3)]
    for bit, axis in ((1, 0), (2, 1), (4, 2)):
        if index & bit:  # mirror along `axis`: det = -1, the other two components flip
            components = [-c if i != axis else c for i, c in enumerate(components)]
    if index & 8:  # swap x and y: det = -1, B -> -(B_y, B_x, B_z)
        components = [-components[1], -components[0], -components[2]]
    return torch.stack(components, dim=-4)
