"""Synthetic raw annotations with a known truth, for examples, tests and benchmarks.

Each item has a true label per attribute; annotators report it with seeded noise, so
aggregation and agreement have something real to recover. Generation is vectorised
(numpy + polars) so a million annotations take seconds.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from helpsteer.attributes import ATTRIBUTES

TOPICS = [
    "photosynthesis",
    "the French Revolution",
    "binary search",
    "compound interest",
    "the water cycle",
    "neural networks",
    "the Roman Empire",
    "climate change",
    "public-key cryptography",
    "the immune system",
    "supply and demand",
    "black holes",
    "the printing press",
    "plate tectonics",
    "recursion",
    "vaccines",
    "inflation",
    "the Silk Road",
    "quantum entanglement",
    "sourdough baking",
]
ASKS = [
    "Explain {t} to a twelve-year-old.",
    "Write a short summary of {t}.",
    "What are three common misconceptions about {t}?",
    "Give me a step-by-step introduction to {t}.",
    "Compare {t} with a related idea and say how they differ.",
]
OPENERS = ["Sure! ", "", "Great question. ", "Here is an overview. ", ""]


def _texts(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    topic = rng.integers(0, len(TOPICS), n)
    ask = rng.integers(0, len(ASKS), n)
    opener = rng.integers(0, len(OPENERS), n)
    detail = rng.integers(1, 6, n)
    prompts = [
        ASKS[a].format(t=TOPICS[t]) + f" (case {i})"
        for i, (a, t) in enumerate(zip(ask, topic, strict=True))
    ]
    responses = [
        OPENERS[o] + " ".join(f"Point {k + 1} about {TOPICS[t]}." for k in range(d))
        for o, t, d in zip(opener, topic, detail, strict=True)
    ]
    return prompts, responses


def raw_ratings(
    n_items: int,
    annotators_per_item: int = 5,
    seed: int = 0,
    n_annotators: int = 50,
    noise: float = 0.8,
) -> pl.DataFrame:
    """Raw rating annotations: `n_items * annotators_per_item` rows."""
    rng = np.random.default_rng(seed)
    prompts, responses = _texts(rng, n_items)
    truth = rng.integers(0, 5, (n_items, len(ATTRIBUTES)))
    rows = n_items * annotators_per_item
    item = np.repeat(np.arange(n_items), annotators_per_item)
    # distinct annotators per item: a random start plus a stride that never repeats
    start = rng.integers(0, n_annotators, n_items)[:, None]
    annotator = (start + np.arange(annotators_per_item)[None, :] * 7) % n_annotators
    noisy = np.rint(truth[item] + rng.normal(0, noise, (rows, len(ATTRIBUTES))))
    values = np.clip(noisy, 0, 4).astype(np.int8)
    frame = pl.DataFrame(
        {
            "item_id": [f"item-{i}" for i in item],
            "prompt": pl.Series(prompts)[item],
            "response": pl.Series(responses)[item],
            "annotator_id": [f"annotator-{a}" for a in annotator.ravel()],
            **{a: values[:, k] for k, a in enumerate(ATTRIBUTES)},
        }
    )
    return frame.with_columns(pl.col(a).cast(pl.Int64) for a in ATTRIBUTES)


def raw_preferences(
    n_pairs: int,
    annotators_per_pair: int = 5,
    seed: int = 1,
    n_annotators: int = 50,
    noise: float = 0.9,
) -> pl.DataFrame:
    """Raw preference annotations with written justifications."""
    rng = np.random.default_rng(seed)
    prompts, first = _texts(rng, n_pairs)
    _, second = _texts(rng, n_pairs)
    truth = rng.integers(-3, 4, n_pairs)
    rows = n_pairs * annotators_per_pair
    pair = np.repeat(np.arange(n_pairs), annotators_per_pair)
    start = rng.integers(0, n_annotators, n_pairs)[:, None]
    annotator = (start + np.arange(annotators_per_pair)[None, :] * 7) % n_annotators
    strength = np.clip(np.rint(truth[pair] + rng.normal(0, noise, rows)), -3, 3).astype(np.int64)
    better = np.where(strength < 0, "@Response 1", "@Response 2")
    worse = np.where(strength < 0, "@Response 2", "@Response 1")
    justification = [
        "Both responses are about equally good. They cover the same points."
        if s == 0
        else f"{b} is better than {w}. It covers the question more fully and stays accurate."
        for s, b, w in zip(strength, better, worse, strict=True)
    ]
    return pl.DataFrame(
        {
            "pair_id": [f"pair-{i}" for i in pair],
            "prompt": pl.Series(prompts)[pair],
            "response_1": pl.Series(first)[pair],
            "response_2": pl.Series(second)[pair],
            "annotator_id": [f"annotator-{a}" for a in annotator.ravel()],
            "preference_strength": strength,
            "justification": justification,
        }
    )


HS3_LANGUAGES = {
    "general": ("english",),
    "stem": ("english",),
    "code": ("python", "javascript_html_css", "sql"),
    "multilingual": ("chinese", "french", "spanish", "korean"),
}
"""HelpSteer3's domains and some of their `language` values (dataset card)."""
_SCORE_WORDS = {
    1: "slightly better than",
    2: "better than",
    3: "much better than",
}


def _reasoning(score: int) -> str:
    if score == 0:
        return "@Response 1 is about the same as @Response 2. Both answer the request fully."
    better, worse = ("@Response 1", "@Response 2") if score < 0 else ("@Response 2", "@Response 1")
    return f"{better} is {_SCORE_WORDS[abs(score)]} {worse}. It follows the request more closely."


def raw_hs3_preferences(
    n_pairs: int,
    annotators_per_pair: int = 3,
    seed: int = 2,
    n_annotators: int = 30,
    noise: float = 0.8,
) -> pl.DataFrame:
    """Raw HelpSteer3 preference annotations: one row per (pair, annotator) with
    `domain`, `language`, `context` messages (every fourth pair two user turns long),
    `response1`, `response2`, `score` -3..3 and `reasoning`."""
    rng = np.random.default_rng(seed)
    prompts, first = _texts(rng, n_pairs)
    _, second = _texts(rng, n_pairs)
    domains = list(HS3_LANGUAGES)
    domain = [domains[i % len(domains)] for i in range(n_pairs)]
    language = [HS3_LANGUAGES[d][(i // 4) % len(HS3_LANGUAGES[d])] for i, d in enumerate(domain)]
    contexts = [
        [{"role": "user", "content": p}]
        if i % 4
        else [
            {"role": "user", "content": p},
            {"role": "assistant", "content": "Could you say more about what you need?"},
            {"role": "user", "content": "Keep it short, please."},
        ]
        for i, p in enumerate(prompts)
    ]
    truth = rng.integers(-3, 4, n_pairs)
    pair = np.repeat(np.arange(n_pairs), annotators_per_pair)
    start = rng.integers(0, n_annotators, n_pairs)[:, None]
    annotator = (start + np.arange(annotators_per_pair)[None, :] * 7) % n_annotators
    rows = n_pairs * annotators_per_pair
    score = np.clip(np.rint(truth[pair] + rng.normal(0, noise, rows)), -3, 3).astype(np.int64)
    return pl.DataFrame(
        {
            "pair_id": [f"hs3-pair-{i}" for i in pair],
            "domain": [domain[i] for i in pair],
            "language": [language[i] for i in pair],
            "context": [contexts[i] for i in pair],
            "response1": pl.Series(first)[pair],
            "response2": pl.Series(second)[pair],
            "annotator_id": [f"annotator-{a}" for a in annotator.ravel()],
            "score": score,
            "reasoning": [_reasoning(int(s)) for s in score],
        }
    )
