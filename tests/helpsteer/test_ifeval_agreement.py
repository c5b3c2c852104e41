"""Our instruction-following checkers against IFEval's own (lm_eval.tasks.ifeval).

Each constraint type with an IFEval counterpart is checked on a generated corpus of
N_PER_TYPE responses built from pieces that hit the edge cases of both implementations
(apostrophes, hyphens and underscores in words, `***` dividers, `*`/`-`/`**` line starts,
empty titles and brackets, fences, curly quotes, full-width commas, P.S. spellings, several
languages and letter cases), with parameters drawn around the counts so that both verdicts
occur. Structural checkers must agree on every response; the language-based ones use
py3langid where IFEval uses langdetect, so they are held to AGREEMENT_LANGUAGE and their
disagreements are printed.

Needs the `eval` extra (lm-eval with langdetect, immutabledict, nltk). IFEval's module
tries to download nltk's punkt_tab when it is imported; the download is replaced by a no-op
here, and the two IFEval checkers that need nltk data (number_sentences: punkt;
capital_word_frequency: punkt_tab) are skipped when that data is not installed.

    python tests/helpsteer/test_ifeval_agreement.py   # prints the agreement table
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from unittest import mock

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from helpsteer import constraints as C  # noqa: E402

N_PER_TYPE = 2000
AGREEMENT_LANGUAGE = 0.93
LANGUAGE_TYPES = {"language:response_language", "case:lowercase", "case:uppercase"}
NLTK_DATA = {
    "length:sentences": "tokenizers/punkt",
    "case:capital_words": "tokenizers/punkt_tab",
}

PLAIN = [
    "river", "bank", "riverbank", "cat", "catalog", "Cat", "zebra", "data", "model", "answer",
    "list", "Paris", "France", "the", "and", "of", "NASA", "FBI", "OK", "it's", "well-known",
    "snake_case", "don't", "café", "naïve", "Über", "42", "3.14", "x_1", "SECTION", "Section",
    "note",
]  # fmt: skip
PIECES = [
    "***", "\n***\n", " *** ", "****", "\n\n", "\n", "\n* item one", "\n- item two",
    "\n-- dash", "\n** bold line", "\n*", "**bold**", "*key*", "* *", "**", "*",
    "<<A Title>>", "<< >>", "<<>>", "<<two\nlines>>", "[name]", "[]", "[a [b] c]",
    "\nSECTION 1\n", "Section 2", "SECTION3", " SECTION 4 ", "PARAGRAPH 1",
    "\nP.S. see you", "p. s. later", "P.P.S extra", "p.p.s", "Note: this",
    ",", "，", '"', "“", "”", "'", "```json", "```", "```JSON\n", '{"a": 1}', "[1, 2]",
    "Any other questions?", "Is there anything else I can help with?", "My answer is",
    "...", ".", "!", "?", "  ", "\t",
]  # fmt: skip
KEYWORDS = ["river", "bank", "cat", "zebra", "data", "answer", "paris", "model", "note"]
PHRASES = ["My answer is", "Any other questions?", "Is there anything else I can help with?"]
SPLITTERS = ["SECTION", "Section", "PARAGRAPH"]
MARKERS = ["P.S.", "P.P.S", "Note:"]

SENTENCES = {
    "en": [
        "The weather is lovely today and we are going to the park.",
        "Please send me the report before the meeting on Friday.",
        "This recipe needs two cups of flour and a pinch of salt.",
        "I think the answer depends on how much time you have.",
        "Our team finished the project ahead of schedule.",
        "Yes.",
        "Thank you very much for your help with the move.",
    ],
    "es": [
        "El tiempo está muy agradable hoy y vamos al parque.",
        "Por favor, envíame el informe antes de la reunión del viernes.",
        "Esta receta necesita dos tazas de harina y una pizca de sal.",
        "Creo que la respuesta depende del tiempo que tengas.",
        "Muchas gracias por tu ayuda con la mudanza.",
    ],
    "fr": [
        "Il fait très beau aujourd'hui et nous allons au parc.",
        "Merci de m'envoyer le rapport avant la réunion de vendredi.",
        "Cette recette demande deux tasses de farine et une pincée de sel.",
        "Je pense que la réponse dépend du temps dont vous disposez.",
        "Merci beaucoup pour votre aide avec le déménagement.",
    ],
    "de": [
        "Das Wetter ist heute schön und wir gehen in den Park.",
        "Bitte schick mir den Bericht vor der Besprechung am Freitag.",
        "Für dieses Rezept braucht man zwei Tassen Mehl und eine Prise Salz.",
        "Ich glaube, die Antwort hängt davon ab, wie viel Zeit du hast.",
        "Vielen Dank für deine Hilfe beim Umzug.",
    ],
    "it": [
        "Oggi il tempo è bellissimo e andiamo al parco.",
        "Per favore mandami il rapporto prima della riunione di venerdì.",
        "Questa ricetta richiede due tazze di farina e un pizzico di sale.",
        "Credo che la risposta dipenda da quanto tempo hai.",
    ],
    "pt": [
        "O tempo está muito bonito hoje e vamos ao parque.",
        "Por favor, envie-me o relatório antes da reunião de sexta-feira.",
        "Esta receita precisa de duas xícaras de farinha e uma pitada de sal.",
        "Acho que a resposta depende de quanto tempo você tem.",
    ],
    "ru": [
        "Сегодня прекрасная погода, и мы идём в парк.",
        "Пожалуйста, пришли мне отчёт до встречи в пятницу.",
        "Для этого рецепта нужны две чашки муки и щепотка соли.",
    ],
    "ja": [
        "今日はとても良い天気なので公園に行きます。",
        "金曜日の会議の前に報告書を送ってください。",
    ],
    "fi": [
        "Tänään on kaunis sää ja menemme puistoon.",
        "Lähetä minulle raportti ennen perjantain kokousta.",
    ],
}
LANGUAGE_PARAMS = ["en", "es", "fr", "de", "it", "pt", "ru", "ja", "fi"]


# ---------------------------------------------------------------- corpus


def structural_response(rng: random.Random) -> str:
    items = [
        rng.choice(PLAIN if rng.random() < 0.55 else PIECES) for _ in range(rng.randint(0, 30))
    ]
    text = "".join(item + rng.choice([" ", " ", "", "\n"]) for item in items)
    wrap = rng.random()
    if wrap < 0.08:
        text = f'"{text.strip()}"'
    elif wrap < 0.14:
        text = f"```json\n{text}\n```"
    elif wrap < 0.2:
        text = text.upper()
    elif wrap < 0.26:
        text = text.lower()
    elif wrap < 0.3:
        text = f"  {rng.choice(PHRASES)} {text}"
    elif wrap < 0.34:
        text = f"{text} {rng.choice(PHRASES)}" + rng.choice(["", '"', " ", "."])
    return text


def language_response(rng: random.Random) -> str:
    languages = [rng.choice(list(SENTENCES)) for _ in range(rng.choice([1, 1, 1, 2]))]
    text = " ".join(rng.choice(SENTENCES[lang]) for lang in languages for _ in range(2))
    roll = rng.random()
    if roll < 0.3:
        text = text.lower()
    elif roll < 0.6:
        text = text.upper()
    elif roll < 0.65:
        text = rng.choice(["12345", "", "!!! ???", "42 + 7 = 49"])
    if rng.random() < 0.15:
        text = f"{text} {rng.choice(PLAIN)}"
    return text


def draw_params(cid: str, rng: random.Random) -> dict:
    n = rng.randint(1, 6)
    relation = rng.choice(["at least", "at most", "exactly"])
    return {
        "length:max_words": lambda: {"n": rng.randint(1, 40)},
        "length:min_words": lambda: {"n": rng.randint(1, 40)},
        "length:sentences": lambda: {"n": n, "relation": relation},
        "length:paragraphs": lambda: {"n": n},
        "format:bullets": lambda: {"n": n},
        "format:highlights": lambda: {"n": n},
        "format:sections": lambda: {"n": n, "splitter": rng.choice(SPLITTERS)},
        "keywords:include": lambda: {"keywords": rng.sample(KEYWORDS, rng.randint(1, 2))},
        "keywords:exclude": lambda: {"forbidden": rng.sample(KEYWORDS, rng.randint(1, 2))},
        "keywords:frequency": lambda: {
            "keyword": rng.choice(KEYWORDS), "n": rng.randint(0, 3), "relation": relation
        },
        "keywords:letter_frequency": lambda: {
            "letter": rng.choice("aeAEtTsz"), "n": rng.randint(0, 12), "relation": relation
        },
        "case:capital_words": lambda: {"n": rng.randint(0, 4), "relation": relation},
        "start:phrase": lambda: {"phrase": rng.choice(PHRASES)},
        "end:phrase": lambda: {"phrase": rng.choice(PHRASES)},
        "content:postscript": lambda: {"marker": rng.choice(MARKERS)},
        "content:placeholders": lambda: {"n": rng.randint(1, 3)},
        "language:response_language": lambda: {"language": rng.choice(LANGUAGE_PARAMS)},
    }.get(cid, dict)()  # fmt: skip


def corpus(cid: str, n: int = N_PER_TYPE, seed: int = 13):
    """(constraint, response) pairs for one constraint type."""
    rng = random.Random(f"{seed}:{cid}")
    make = language_response if cid in LANGUAGE_TYPES else structural_response
    for _ in range(n):
        yield C.build({"id": cid, "params": draw_params(cid, rng)}), make(rng)


# ---------------------------------------------------------------- IFEval


def load_ifeval():
    """IFEval's registry, imported without letting it download nltk data."""
    pytest.importorskip("langdetect")
    pytest.importorskip("immutabledict")
    nltk = pytest.importorskip("nltk")
    with mock.patch.object(nltk, "download", lambda *args, **kwargs: False):
        registry = pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry")
    import langdetect

    langdetect.DetectorFactory.seed = 0  # langdetect samples at random otherwise
    return registry.INSTRUCTION_DICT


def ifeval_verdict(registry, constraint: C.Constraint, response: str) -> bool:
    verdicts = []
    for instruction_id, kwargs in constraint.ifeval():
        checker = registry[instruction_id](instruction_id)
        checker.build_description(**kwargs)
        verdicts.append(bool(checker.check_following(response)))
    return all(verdicts)


def nltk_data_missing(cid: str) -> bool:
    import nltk

    try:
        nltk.data.find(NLTK_DATA[cid])
    except LookupError:
        return True
    return False


def disagreements(registry, cid: str) -> tuple[int, list[tuple[dict, str, bool, str]]]:
    found, total = [], 0
    for constraint, response in corpus(cid):
        ours = constraint.check(response)
        theirs = ifeval_verdict(registry, constraint, response)
        total += 1
        if ours.ok != theirs:
            found.append((constraint.to_dict()["params"], response, theirs, ours.reason))
    return total, found


def mapped_ids() -> list[str]:
    ids = []
    for cid in sorted(C.REGISTRY):
        example = next(c for c, _ in corpus(cid, n=1))
        if example.ifeval():
            ids.append(cid)
    return ids


@pytest.fixture(scope="module")
def registry():
    import logging

    logging.getLogger("lm_eval").setLevel(logging.CRITICAL)
    return load_ifeval()


@pytest.mark.parametrize("cid", mapped_ids())
def test_checker_agrees_with_ifeval(registry, cid):
    if cid in NLTK_DATA and nltk_data_missing(cid):
        pytest.skip(f"IFEval's checker for {cid} needs nltk data {NLTK_DATA[cid]} (offline)")
    total, found = disagreements(registry, cid)
    assert total >= 2000
    agreement = 1 - len(found) / total
    listed = "\n".join(
        f"  {params} {response!r}: IFEval {theirs}, ours: {reason}"
        for params, response, theirs, reason in found[:10]
    )
    if cid in LANGUAGE_TYPES:
        print(f"\n{cid}: agreement {agreement:.2%}, {len(found)} disagreements\n{listed}")
        assert agreement >= AGREEMENT_LANGUAGE, listed
    else:
        assert not found, f"{len(found)} of {total} differ:\n{listed}"


def test_corpus_exercises_both_verdicts(registry):
    for cid in mapped_ids():
        verdicts = {c.check(r).ok for c, r in corpus(cid, n=300)}
        assert verdicts == {True, False}, cid


def test_every_constraint_says_whether_ifeval_has_it():
    assert {"start:phrase", "length:max_words", "case:lowercase"} <= set(mapped_ids())
    assert len(mapped_ids()) == len(C.REGISTRY)


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)
    reg = load_ifeval()
    print("| our constraint | IFEval instruction | responses | agreement |")
    print("| --- | --- | --- | --- |")
    for cid in mapped_ids():
        example = next(c for c, _ in corpus(cid, n=1))
        target = ", ".join(sorted({i for i, _ in example.ifeval()}))
        if cid in NLTK_DATA and nltk_data_missing(cid):
            print(f"| `{cid}` | `{target}` | - | not measured: needs nltk {NLTK_DATA[cid]} |")
            continue
        total, found = disagreements(reg, cid)
        print(f"| `{cid}` | `{target}` | {total} | {1 - len(found) / total:.2%} |")
        for params, response, theirs, reason in found[:5]:
            print(f"<!-- {cid} {params} {response!r}: IFEval {theirs}, ours: {reason} -->")


if __name__ == "__main__":
    main()
