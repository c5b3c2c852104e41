"""Quality filters: exact and near-duplicate removal, refusal phrases, language identification.

Near duplicates use rensa's MinHash (`RMinHash`) and LSH index (`RMinHashLSH`), a maintained
Rust implementation, instead of our own numpy/hashlib MinHash. On 2,000 AlpacaEval responses
(about 1,000 characters each, 5-character shingles, 128 permutations) signing took 0.055 s
with rensa, 1.9 s with datasketch's `MinHash.bulk` and 5.1 s with our old code (2-core shared
machine, load average about 5), so rensa is the library; its Jaccard estimates are unbiased
within MinHash's usual error (about 0.03 at 128 permutations; see tests/synth/test_filter.py).

Language identification is `helpsteer.constraints.identify_language` (py3langid, a model
shipped in its wheel), shared with the response-language constraint; see there for why.
"""

from __future__ import annotations

import re
from collections.abc import Hashable

from rensa import RMinHash, RMinHashLSH

from helpsteer.constraints import identify_language

_SPACE = re.compile(r"\s+")
# py3langid's cost grows with the bytes it reads; the opening 500 characters tell the
# language of a response as well as the whole of it does for the filter's purpose.
LANGUAGE_SAMPLE_CHARS = 500
_PUNCT = re.compile(r"[^\w\s]")

REFUSAL_PHRASES = [
    "i'm sorry, but i can't",
    "i am sorry, but i cannot",
    "i'm sorry, i can't",
    "sorry, but i can't",
    "i cannot help with",
    "i can't help with",
    "i can't assist with",
    "i cannot assist with",
    "i'm unable to",
    "i am unable to",
    "i won't be able to",
    "i cannot provide",
    "i can't provide",
    "as an ai language model",
    "as an ai, i",
    "i'm not able to",
    "i am not able to",
    "i must decline",
    "i cannot fulfill",
    "i can't fulfill",
]


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: the key for exact duplicates."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.casefold())).strip()


def shingles(text: str, size: int) -> set[str]:
    """Character shingles of the normalised text (the whole text when it is shorter)."""
    norm = normalise(text)
    if len(norm) <= size:
        return {norm}
    return {norm[i : i + size] for i in range(len(norm) - size + 1)}


def minhash(text: str, num_perm: int = 128, shingle: int = 5, seed: int = 0) -> RMinHash:
    """The MinHash of `text`'s character shingles."""
    signature = RMinHash(num_perm=num_perm, seed=seed)
    signature.update(list(shingles(text, shingle)))
    return signature


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two texts with this Jaccard share at least one LSH bucket."""
    return 1 - (1 - similarity**rows) ** bands


def lsh_bands(num_perm: int, threshold: float, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows) with bands * rows == num_perm (rensa's LSH needs a divisor): the most
    rows per band, so the fewest false candidates, that still makes a pair at `threshold`
    a candidate with probability >= `recall`. Candidates are verified afterwards, so a
    lower S-curve only costs comparisons, while a higher one would miss duplicates."""
    divisors = [r for r in range(1, num_perm + 1) if num_perm % r == 0]
    for rows in reversed(divisors):
        if candidate_probability(threshold, num_perm // rows, rows) >= recall:
            return num_perm // rows, rows
    return num_perm, 1


def near_duplicates(
    texts: list[str],
    groups: list[Hashable] | None = None,
    threshold: float = 0.8,
    num_perm: int = 128,
    shingle: int = 5,
    seed: int = 0,
) -> dict[int, tuple[int, float]]:
    """{index: (index of the earlier kept text it duplicates, estimated Jaccard)} for every
    text whose shingle Jaccard with an earlier kept text (in the same group) is estimated
    at or above `threshold`. Candidates come from LSH buckets; each is then verified."""
    bands, _ = lsh_bands(num_perm, threshold)
    indexes: dict[Hashable, RMinHashLSH] = {}
    kept: dict[int, RMinHash] = {}
    dropped: dict[int, tuple[int, float]] = {}
    for i, text in enumerate(texts):
        signature = minhash(text, num_perm, shingle, seed)
        group = groups[i] if groups is not None else None
        index = indexes.get(group)
        if index is None:
            index = indexes[group] = RMinHashLSH(
                threshold=threshold, num_perm=num_perm, num_bands=bands
            )
        match = _best_match(signature, index.query(signature), kept)
        if match is not None and match[1] >= threshold:
            dropped[i] = match
            continue
        index.insert(i, signature)
        kept[i] = signature
    return dropped


def _best_match(
    signature: RMinHash, candidates: list[int], kept: dict[int, RMinHash]
) -> tuple[int, float] | None:
    """The candidate with the highest estimated Jaccard (the earliest on ties)."""
    best = None
    for j in sorted(candidates):
        score = signature.jaccard(kept[j])
        if best is None or score > best[1]:
            best = (j, score)
    return best


def refusal_phrase(text: str, phrases: list[str]) -> str | None:
    """The first refusal phrase found in the opening 300 characters, or None."""
    head = text[:300].casefold().replace("’", "'")
    return next((p for p in phrases if p in head), None)


def other_language(
    text: str, expected: str, min_confidence: float = 0.9, min_letters: int = 20
) -> tuple[str, float] | None:
    """(language, confidence) when py3langid is confident that `text` is in another
    language than `expected`; None when it agrees, is unsure, or there are too few letters
    to tell (short or code-only rows are kept, as a person would keep them)."""
    if sum(c.isalpha() for c in text[:1000]) < min_letters:
        return None
    language, confidence = identify_language(text, max_chars=LANGUAGE_SAMPLE_CHARS)
    if language == expected or confidence < min_confidence:
        return None
    return language, confidence
