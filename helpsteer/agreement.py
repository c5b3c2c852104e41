"""Inter-annotator agreement: Krippendorff's alpha (ordinal), Cohen's kappa (quadratic
weights, mean over annotator pairs) and Pearson's r over pairs of annotations.

All three work on long data (unit, annotator, value) with whole-array operations:
alpha and Pearson from per-unit value counts, kappa from each unit's annotator pairs.

The products over the units x categories counts are `np.einsum` (numpy's own loops), not
`@`: a float `@` goes to OpenBLAS, whose worker threads then spin for a while after each
call. In `hs build-dataset` on 1.3 M annotations (2 cores) those spinning workers took
1.9% of the profile's samples beside polars' threads; with einsum the run's user CPU went
from 8.94-9.51 s to 8.65-8.94 s (7 runs each), for products that take milliseconds
either way (alpha 14 ms, Pearson 5 ms, row sums 2 ms for 200k units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl


def value_counts(units, values, categories: Sequence[int]) -> np.ndarray:
    """Matrix (units x categories) of how many annotators gave each value to each unit."""
    frame = pl.DataFrame({"u": units, "v": values}).drop_nulls()
    if frame.height == 0:
        return np.zeros((0, len(categories)))
    unit_index = frame["u"].rank("dense").cast(pl.Int64).to_numpy() - 1
    lookup = {c: i for i, c in enumerate(categories)}
    value_index = frame["v"].replace_strict(lookup, return_dtype=pl.Int64).to_numpy()
    flat = np.bincount(
        unit_index * len(categories) + value_index,
        minlength=(unit_index.max() + 1) * len(categories),
    )
    return flat.reshape(-1, len(categories)).astype(np.float64)


def krippendorff_alpha_ordinal(counts: np.ndarray) -> float:
    """Krippendorff's alpha with the ordinal metric, from a units x categories count matrix."""
    pairable, m = _pairable(counts)
    if pairable.size == 0:
        return math.nan
    weighted = pairable / (m - 1)[:, None]
    coincidence = np.einsum("uc,ud->cd", weighted, pairable) - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=0)
    n = n_c.sum()
    cumulative = np.cumsum(n_c)
    k = len(n_c)
    delta = np.zeros((k, k))
    for c in range(k):
        for d in range(k):
            lo, hi = min(c, d), max(c, d)
            between = cumulative[hi] - (cumulative[lo - 1] if lo > 0 else 0)
            delta[c, d] = (between - (n_c[c] + n_c[d]) / 2) ** 2
    expected = (np.outer(n_c, n_c) * delta).sum()
    if expected == 0:
        return math.nan
    return float(1 - (n - 1) * (coincidence * delta).sum() / expected)


def pooled_pearson(counts: np.ndarray, categories: Sequence[int]) -> float:
    """Pearson's r over all ordered pairs of annotations of the same unit."""
    x = np.asarray(categories, dtype=np.float64)
    counts, m = _pairable(counts)
    if counts.size == 0:
        return math.nan
    s = np.einsum("uc,c->u", counts, x)
    q = np.einsum("uc,c->u", counts, x * x)
    pairs = (m * (m - 1)).sum()
    mean = ((m - 1) * s).sum() / pairs
    second = ((m - 1) * q).sum() / pairs
    cross = (s * s - q).sum() / pairs
    variance = second - mean * mean
    return float((cross - mean * mean) / variance) if variance > 0 else math.nan


def _row_sums(counts: np.ndarray) -> np.ndarray:
    # numpy's sum along a 5-wide axis took 4 ms for 200k units, this 1 (and no BLAS)
    return np.einsum("uc->u", counts)


def _pairable(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the units with two annotations or more, their annotation counts); no copy when
    that is every unit (a masked copy of 200k units took 12 ms, half of alpha's time)."""
    m = _row_sums(counts)
    keep = m >= 2
    if keep.all():
        return counts, m
    return counts[keep], m[keep]


_SUMS = ("n", "d2", "x", "y", "x2", "y2")


_MOST_SHIFTS = 16
"""Above this many annotations of one unit, pairs come from a self-join instead."""


def _pair_sums(
    frame: pl.DataFrame, unit: str, annotator: str, columns: Sequence[str], by: list[str]
) -> pl.DataFrame:
    """Per annotator pair (and `by` columns, constant within a unit): sums that
    quadratic kappa needs; annotators `_a` < `_b` as dense codes of `annotator`.

    With the rows sorted by (unit, annotator), a unit's pairs are its row i with its row
    i + d for d = 1, 2, ...: one pass per offset and no table of every pair. On 1 M
    ratings (5 per item) a self-join with a filter inside each group's sums took 1.70 s
    and 208 MiB above its input; the offsets with the terms computed before grouping
    take 0.52 s and 95 MiB. A unit with more than `_MOST_SHIFTS` annotations (a pass per
    offset over every row) goes to the self-join.
    """
    narrow = frame.select(pl.col(unit).alias("_u"), *by, *columns).with_columns(
        _codes(frame[annotator]).alias("_a")
    )
    most = narrow.group_by("_u").len()["len"].max() or 0
    if most > _MOST_SHIFTS:
        right = narrow.select(
            "_u", pl.col("_a").alias("_b"), *[pl.col(c).alias(f"{c}__r") for c in columns]
        )
        parts = [narrow.lazy().join(right.lazy(), on="_u").filter(pl.col("_a") < pl.col("_b"))]
    else:
        ordered = narrow.sort("_u", "_a").lazy()
        parts = [
            ordered.with_columns(
                pl.col("_u").shift(-d).alias("_u_next"),
                pl.col("_a").shift(-d).alias("_b"),
                *[pl.col(c).shift(-d).alias(f"{c}__r") for c in columns],
            ).filter((pl.col("_u") == pl.col("_u_next")) & (pl.col("_a") < pl.col("_b")))
            for d in range(1, most)
        ]
    # Terms of the sums, null unless both annotations of the pair are given; a plain
    # sum per group then (a filter inside each group's sum took 2 s of 2.2).
    terms, aggs = [], []
    for c in columns:
        both = pl.col(c).is_not_null() & pl.col(f"{c}__r").is_not_null()
        x = pl.when(both).then(pl.col(c).cast(pl.Float64))
        y = pl.when(both).then(pl.col(f"{c}__r").cast(pl.Float64))
        terms += [
            x.alias(f"{c}:x"),
            y.alias(f"{c}:y"),
            ((x - y) ** 2).alias(f"{c}:d2"),
            (x * x).alias(f"{c}:x2"),
            (y * y).alias(f"{c}:y2"),
        ]
        aggs += [pl.col(f"{c}:x").count().alias(f"{c}:n")]
        aggs += [pl.col(f"{c}:{k}").sum() for k in _SUMS[1:]]
    if not parts:  # no unit has two annotations
        parts = [narrow.lazy().head(0).with_columns(pl.col("_a").alias("_b"))]
        parts[0] = parts[0].with_columns(pl.col(c).alias(f"{c}__r") for c in columns)
    pairs = pl.concat(parts, how="vertical").select("_a", "_b", *by, *terms)
    return pairs.group_by("_a", "_b", *by).agg(aggs).collect()


def _codes(values: pl.Series) -> pl.Series:
    """A code per distinct value (null stays null), in no particular order: a pair's
    kappa is the same either way round. Ranking the text instead sorts every row (0.67 s
    for 1 M annotator ids; this takes 0.03 s)."""
    distinct = values.unique().to_frame().with_row_index("_code")
    frame = values.to_frame().join(distinct, on=values.name, how="left", maintain_order="left")
    return frame["_code"]


def _kappa_from_sums(sums: pl.DataFrame, columns: Sequence[str], min_overlap: int):
    """Cohen's quadratic kappa per pair from its sums, averaged over pairs.

    With quadratic weights kappa = 1 - E[(x-y)^2] / (E[x^2] + E[y^2] - 2 E[x] E[y]).
    """
    result = {}
    for c in columns:
        usable = sums.filter(pl.col(f"{c}:n") >= min_overlap)
        n = usable[f"{c}:n"].cast(pl.Float64)
        mx, my = usable[f"{c}:x"] / n, usable[f"{c}:y"] / n
        expected = usable[f"{c}:x2"] / n + usable[f"{c}:y2"] / n - 2 * mx * my
        kappa = (1 - (usable[f"{c}:d2"] / n) / expected).filter(expected > 0)
        result[c] = (float(kappa.mean()) if kappa.len() else math.nan, kappa.len())
    return result


def quadratic_kappa_pairwise_mean(
    frame: pl.DataFrame, unit: str, annotator: str, columns: Sequence[str], min_overlap: int = 5
) -> dict[str, tuple[float, int]]:
    """Cohen's quadratic-weighted kappa for each annotator pair that shares at least
    `min_overlap` units, averaged over pairs. Returns column -> (mean kappa, pairs used)."""
    return _kappa_from_sums(_pair_sums(frame, unit, annotator, columns, []), columns, min_overlap)


def _summary(counts: np.ndarray, kappa: tuple[float, int], categories) -> dict:
    return {
        "krippendorff_alpha": _clean(krippendorff_alpha_ordinal(counts)),
        "cohen_kappa_quadratic": _clean(kappa[0]),
        "kappa_annotator_pairs": kappa[1],
        "pearson": _clean(pooled_pearson(counts, categories)),
        "units": int((_row_sums(counts) >= 2).sum()),
        "annotations": int(counts.sum()),
    }


def agreement_table(
    frame: pl.DataFrame,
    unit: str,
    annotator: str,
    columns: Sequence[str],
    categories: Sequence[int],
    min_overlap: int = 5,
) -> dict[str, dict[str, float | int]]:
    """All three measures for each column of a long annotation table."""
    return agreement_before_after(frame, unit, annotator, columns, categories, None, min_overlap)[0]


def agreement_before_after(
    frame: pl.DataFrame,
    unit: str,
    annotator: str,
    columns: Sequence[str],
    categories: Sequence[int],
    kept: pl.Series | None,
    min_overlap: int = 5,
) -> tuple[dict, dict]:
    """Agreement on all units and on the units in `kept` (ids), from one self-join."""
    codes = frame[unit].rank("dense").cast(pl.Int64) - 1
    marked = frame.with_columns(
        codes.alias("_code"),
        (frame[unit].is_in(kept.implode()) if kept is not None else pl.lit(True)).alias("_kept"),
    )
    sums = _pair_sums(marked, "_code", annotator, columns, ["_kept"])
    everything = sums.group_by("_a", "_b").agg(pl.exclude("_kept").sum())
    only_kept = sums.filter("_kept")
    kappa_all = _kappa_from_sums(everything, columns, min_overlap)
    kappa_kept = _kappa_from_sums(only_kept, columns, min_overlap)
    unit_kept = marked.group_by("_code").agg(pl.col("_kept").first()).sort("_code")["_kept"]
    keep_mask = unit_kept.to_numpy()
    before, after = {}, {}
    for c in columns:
        counts = _counts_by_code(marked["_code"], marked[c], categories, len(keep_mask))
        before[c] = _summary(counts, kappa_all[c], categories)
        kept_counts = counts if keep_mask.all() else counts[keep_mask]
        after[c] = _summary(kept_counts, kappa_kept[c], categories)
    return before, after


def _counts_by_code(codes: pl.Series, values: pl.Series, categories, n_units: int) -> np.ndarray:
    frame = pl.DataFrame({"u": codes, "v": values}).drop_nulls()
    lookup = {c: i for i, c in enumerate(categories)}
    value_index = frame["v"].replace_strict(lookup, return_dtype=pl.Int64).to_numpy()
    flat = np.bincount(
        frame["u"].to_numpy() * len(categories) + value_index,
        minlength=n_units * len(categories),
    )
    return flat.reshape(n_units, len(categories)).astype(np.float64)


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)
