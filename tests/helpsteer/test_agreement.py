import itertools

import numpy as np
import polars as pl
import pytest

from helpsteer.agreement import (
    agreement_before_after,
    agreement_table,
    krippendorff_alpha_ordinal,
    pooled_pearson,
    quadratic_kappa_pairwise_mean,
    value_counts,
)

krippendorff = pytest.importorskip("krippendorff")


def _random_long(seed=0, units=60, raters=6, per_unit=4):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(units):
        truth = rng.integers(0, 5)
        for r in rng.choice(raters, per_unit, replace=False):
            rows.append((f"u{u}", f"r{r}", int(np.clip(truth + rng.integers(-1, 2), 0, 4))))
    return pl.DataFrame(rows, schema=["unit", "rater", "value"], orient="row")


def test_alpha_matches_the_krippendorff_package():
    frame = _random_long()
    reliability = frame.pivot(on="unit", index="rater", values="value").drop("rater")
    expected = krippendorff.alpha(
        reliability_data=reliability.to_numpy().astype(float),
        level_of_measurement="ordinal",
        value_domain=[0, 1, 2, 3, 4],
    )
    counts = value_counts(frame["unit"], frame["value"], range(5))
    assert krippendorff_alpha_ordinal(counts) == pytest.approx(expected, abs=1e-9)


def _kappa(x, y):
    cats = range(5)
    observed = np.zeros((5, 5))
    for a, b in zip(x, y, strict=True):
        observed[a, b] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(1), observed.sum(0))
    weights = np.array([[(i - j) ** 2 for j in cats] for i in cats])
    return 1 - (weights * observed).sum() / (weights * expected).sum()


def test_kappa_is_the_mean_of_cohen_quadratic_kappa_over_rater_pairs():
    frame = _random_long(seed=1)
    result, pairs = quadratic_kappa_pairwise_mean(frame, "unit", "rater", ["value"], 5)["value"]
    by_rater = {
        r: dict(zip(g["unit"], g["value"], strict=True)) for (r,), g in frame.group_by("rater")
    }
    kappas = []
    for a, b in itertools.combinations(sorted(by_rater), 2):
        shared = sorted(set(by_rater[a]) & set(by_rater[b]))
        if len(shared) >= 5:
            kappas.append(
                _kappa([by_rater[a][u] for u in shared], [by_rater[b][u] for u in shared])
            )
    assert pairs == len(kappas)
    assert result == pytest.approx(np.mean(kappas), abs=1e-9)


def test_pooled_pearson_equals_correlation_over_explicit_pairs():
    frame = _random_long(seed=2)
    xs, ys = [], []
    for _, group in frame.group_by("unit"):
        values = group["value"].to_list()
        for i, j in itertools.permutations(range(len(values)), 2):
            xs.append(values[i])
            ys.append(values[j])
    counts = value_counts(frame["unit"], frame["value"], range(5))
    assert pooled_pearson(counts, range(5)) == pytest.approx(np.corrcoef(xs, ys)[0, 1], abs=1e-9)


def test_perfect_agreement_and_table():
    frame = pl.DataFrame(
        {"unit": ["a"] * 3 + ["b"] * 3, "rater": ["x", "y", "z"] * 2, "v": [1, 1, 1, 4, 4, 4]}
    )
    table = agreement_table(frame, "unit", "rater", ["v"], range(5), min_overlap=2)["v"]
    assert table["krippendorff_alpha"] == 1.0
    assert table["pearson"] == 1.0
    assert table["cohen_kappa_quadratic"] == 1.0
    assert table["units"] == 2


def test_before_after_from_one_join_equals_separate_tables():
    frame = _random_long(seed=4, units=80)
    kept = pl.Series([f"u{i}" for i in range(0, 80, 3)])
    before, after = agreement_before_after(frame, "unit", "rater", ["value"], range(5), kept, 3)
    assert before == agreement_table(frame, "unit", "rater", ["value"], range(5), 3)
    subset = frame.filter(pl.col("unit").is_in(kept.implode()))
    assert after == agreement_table(subset, "unit", "rater", ["value"], range(5), 3)
    assert after["value"]["units"] == len(kept)


def _kappa_over_explicit_pairs(frame, min_overlap):
    by_rater = {
        r: {u: v for u, v in zip(g["unit"], g["value"], strict=True) if v is not None}
        for (r,), g in frame.group_by("rater")
    }
    kappas = []
    for a, b in itertools.combinations(sorted(by_rater), 2):
        shared = sorted(set(by_rater[a]) & set(by_rater[b]))
        if len(shared) >= min_overlap:
            x, y = [by_rater[a][u] for u in shared], [by_rater[b][u] for u in shared]
            if len(set(x) | set(y)) > 1:
                kappas.append(_kappa(x, y))
    return float(np.mean(kappas)), len(kappas)


@pytest.mark.parametrize("most_shifts", [16, 0], ids=["offsets", "self-join"])
def test_kappa_pairs_with_nulls_and_many_raters_per_unit(monkeypatch, most_shifts):
    """Units with 2 to 9 raters and missing values: both ways of forming a unit's rater
    pairs give the mean over explicit pairs."""
    import helpsteer.agreement as agreement

    monkeypatch.setattr(agreement, "_MOST_SHIFTS", most_shifts)
    parts = [
        _random_long(seed=s, units=40, raters=12, per_unit=k).with_columns(
            pl.format("{}-{}", pl.col("unit"), pl.lit(k))
        )
        for s, k in ((3, 9), (4, 2))
    ]
    every_7th = pl.int_range(pl.len()) % 7 == 0
    frame = pl.concat(parts).with_columns(pl.when(~every_7th).then(pl.col("value")).alias("value"))
    expected, pairs = _kappa_over_explicit_pairs(frame, 3)
    result, used = quadratic_kappa_pairwise_mean(frame, "unit", "rater", ["value"], 3)["value"]
    assert used == pairs > 20
    assert result == pytest.approx(expected, abs=1e-9)
