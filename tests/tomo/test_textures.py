"""Texture library: every class, seeded, unit vectors in the material, a disjoint split."""

from __future__ import annotations

import pytest
import torch

from lorentz_live.tomo.fields import spectral_divergence
from lorentz_live.tomo.textures import CLASSES, generate_sample, library


@pytest.mark.parametrize("kind", CLASSES)
def test_every_class_is_a_unit_field_inside_a_cylinder(kind: str) -> None:
    sample = generate_sample(kind, 16, seed=7)
    m = sample.magnetisation_a_per_m
    magnitude = torch.linalg.vector_norm(m, dim=0)
    inside = magnitude[sample.mask]
    assert inside.min() >= 0.3e6 and inside.max() <= 1.2e6
    assert (inside.max() - inside.min()) / inside.max() < 1e-5  # one Ms per sample
    assert magnitude[~sample.mask].max() == 0
    assert sample.mask.sum() > 50
    # the stray field is part of B: B does not vanish outside the material
    assert sample.induction_t[:, ~sample.mask].abs().max() > 1e-3


def test_samples_are_reproducible_and_differ_between_seeds() -> None:
    a = generate_sample("skyrmion_tube", 16, seed=3)
    b = generate_sample("skyrmion_tube", 16, seed=3)
    c = generate_sample("skyrmion_tube", 16, seed=4)
    torch.testing.assert_close(a.induction_t, b.induction_t)
    assert not torch.equal(a.magnetisation_a_per_m, c.magnetisation_a_per_m)


def test_induction_of_a_sample_is_divergence_free_in_its_padded_box() -> None:
    sample = generate_sample("hopfion", 16, seed=1)
    b = sample.induction_t.double()
    # the crop of the 2x box is not periodic, so compare in the interior only
    div = spectral_divergence(b)
    assert div.abs().mean() < 0.2 * torch.linalg.vector_norm(b, dim=0).mean()


def test_train_and_test_splits_are_disjoint_and_cover_every_class() -> None:
    train = library(110, 16, seed=1, split="train")
    test = library(110, 16, seed=1, split="test")
    assert len(train) == 88 and len(test) == 22
    assert not {s for s, _ in train} & {s for s, _ in test}
    assert {k for _, k in test} == set(CLASSES)
    with pytest.raises(ValueError, match="unknown texture"):
        generate_sample("skyrmionium", 16, seed=0)
