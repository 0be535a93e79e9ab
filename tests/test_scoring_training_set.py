"""The training recipe is one set of rows, used alike by training and by writer cross-validation,
and no fold ever learns anything made from its own test writers' ink."""

from __future__ import annotations

import numpy as np

from gateway.scoring.recognizer import NOT_ONE_CHARACTER
from gateway.scoring.train import (
    SPECS,
    SharedFiles,
    training_set,
    writer_cross_validation,
    writer_folds,
)


def test_every_added_row_is_held_out_with_the_writer_it_was_made_from():
    spec = SPECS["digit"]
    files = SharedFiles()
    samples = files.samples(spec.train[1], held_out=False)  # UJI digits: a few hundred
    fold_of = writer_folds([s.group for s in samples])
    data = training_set(spec, samples, fold_of, np.random.default_rng(0), lambda _: None)

    copies = len(samples) * spec.copies
    np.testing.assert_array_equal(data.fold_added[:copies], np.tile(data.fold, spec.copies))
    pairs = data.y_added == spec.learnt.index(NOT_ONE_CHARACTER)
    assert pairs.sum() == spec.touching_pairs
    # A pair's fold is a real writer's fold, never "train everywhere" (-1).
    assert set(data.fold_added[pairs]) <= set(fold_of.values())
    for k in set(fold_of.values()):
        x, y = data.without_fold(k)
        assert len(x) == len(y) == (data.fold != k).sum() + (data.fold_added != k).sum()


def test_digit_recipe_cross_validates_by_writer_with_its_touching_pairs():
    # Before the recipe was shared, this raised: cross-validation fitted the digit model's
    # NOT_ONE_CHARACTER class without a single touching pair to learn it from.
    result = writer_cross_validation("digit", SPECS["digit"].train[1].file, folds=4)
    assert result["writers"] == 11
    assert result["n"] == 220
    assert result["accuracy"] > 0.95
