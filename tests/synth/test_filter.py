"""synth.filter: duplicates (exact, rensa MinHash near), length, refusals, py3langid language."""

from __future__ import annotations

import polars as pl
import pytest

from helpsteer.pipeline import PipelineError
from synth.filters import candidate_probability, lsh_bands, minhash, near_duplicates, shingles

BASE = "How can I improve my sleep quality when I work rotating night shifts at a hospital?"
PARAPHRASE = "How can I improve my sleep quality when I work rotating night-shifts in a hospital??"
DISTINCT = [
    "What is the best way to learn the piano as an adult beginner with little free time?",
    "Explain how compound interest works using a savings account as an example.",
    "Write a short poem about autumn leaves falling in a quiet city park.",
    "How can I improve my running speed when I train three days a week on a track?",
]


def test_minhash_catches_small_edits_and_keeps_distinct_texts():
    dups = near_duplicates([BASE, *DISTINCT, PARAPHRASE], threshold=0.7)
    assert list(dups) == [5] and dups[5][0] == 0 and dups[5][1] >= 0.7
    assert near_duplicates(DISTINCT, threshold=0.7) == {}
    grouped = near_duplicates([BASE, PARAPHRASE], groups=["a", "b"], threshold=0.7)
    assert grouped == {}


def test_lsh_band_choice_keeps_recall_at_the_threshold():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(128, threshold)
        assert bands * rows == 128
        assert candidate_probability(threshold, bands, rows) >= 0.99
        # the next coarser split (more rows per band) would miss more than 1% at threshold
        if rows < 128:
            assert candidate_probability(threshold, bands // 2, rows * 2) < 0.99


def test_minhash_estimates_shingle_jaccard():
    base = " ".join(f"word{i}" for i in range(300))
    for cut in (30, 100, 200):
        other = " ".join(f"word{i}" for i in range(cut, 300 + cut))
        a, b = shingles(base, 5), shingles(other, 5)
        true = len(a & b) / len(a | b)
        assert abs(minhash(base).jaccard(minhash(other)) - true) < 0.12


def test_near_duplicate_keeps_the_best_earlier_match():
    texts = [BASE, DISTINCT[0], PARAPHRASE, BASE + " Thanks!"]
    dups = near_duplicates(texts, threshold=0.6)
    assert set(dups) == {2, 3} and dups[2][0] == 0 and dups[3][0] == 0


def prompts_table(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"prompt_id": [f"id{i}" for i in range(len(texts))], "prompt": texts,
         "source": ["t"] * len(texts), "meta": ["{}"] * len(texts)}
    )  # fmt: skip


def test_filter_prompts_with_reasons(run):
    texts = [
        BASE,
        BASE.upper(),  # exact duplicate after normalisation
        PARAPHRASE,
        *DISTINCT,
        "Hi",
        "¿Cuál es la mejor manera de aprender a tocar el piano para los que no tienen tiempo?",
        "Ist es ok?",  # too few letters to judge its language: kept
    ]
    run.tables.set("prompts", prompts_table(texts))
    out = run("synth.filter", min_words=3, near_threshold=0.7)["prompts"]
    assert out["prompt"].to_list() == [BASE, *DISTINCT, "Ist es ok?"]
    rejected = pl.concat(run.rejected).sort("line")
    reasons = dict(zip(rejected["line"], rejected["reason"], strict=True))
    assert reasons[1] == "exact duplicate of row 0"
    assert reasons[2].startswith("near duplicate of row 0 (estimated Jaccard")
    assert reasons[7] == "length: 1 words < min_words 3"
    assert reasons[8].startswith("language: py3langid says 'es' (p=")
    assert reasons[8].endswith("expected 'en'")
    assert '"prompt_id":"id1"' in rejected["record"][0]
    info = run.info["synth.filter"]
    assert info["kept"] == 6 and info["dropped"]["exact_duplicate"] == 1


def test_filter_responses_refusals_length_and_per_prompt_dedupe(run):
    frame = pl.DataFrame(
        {
            "prompt_id": ["a", "a", "b", "b", "c"],
            "response_id": ["a0", "a1", "b0", "b1", "c0"],
            "response": [
                "Paris is the capital of France.",
                "I'm sorry, but I can't help with that request.",
                "Paris is the capital of France.",
                "A" * 50,
                "As an AI language model, I cannot browse.",
            ],
        }
    )
    run.tables.set("responses", frame)
    out = run("synth.filter", table="responses", max_chars=48, language=None)["responses"]
    # the same text under another prompt is not a duplicate: dedupe is per prompt
    assert out["response_id"].to_list() == ["a0", "b0"]
    reasons = run.reasons()
    assert "refusal: contains \"i'm sorry, but i can't\"" in reasons
    assert "length: 50 characters > max_chars 48" in reasons
    assert any(r.startswith("refusal: contains 'as an ai language model'") for r in reasons)


def test_filter_options_off_and_bad_table(run):
    run.tables.set("prompts", prompts_table([BASE, BASE, "Hola amigo, ¿cómo estás? Es que no sé."]))
    out = run("synth.filter", exact_dedupe=False, near_dedupe=False, language=None)
    assert out["prompts"].height == 3
    # the old key still works, and "es" keeps the Spanish row but drops the English ones
    out = run("synth.filter", exact_dedupe=False, near_dedupe=False, stopword_language="es")
    assert out["prompts"]["prompt"].to_list() == ["Hola amigo, ¿cómo estás? Es que no sé."]
    with pytest.raises(PipelineError, match="no table 'responses'"):
        run("synth.filter", table="responses")
