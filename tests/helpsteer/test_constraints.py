import pytest

from helpsteer import constraints as C

# (id, params, a response that follows it, a response that breaks it)
CASES = [
    ("length:max_words", {"n": 5}, "One two three four five.", "One two three four five six."),
    ("length:min_words", {"n": 4}, "It's a well-known fact.", "Too short here."),
    (
        "length:sentences",
        {"n": 2, "relation": "exactly"},
        "First one. Second one?",
        "First one. Second one! Third one.",
    ),
    ("length:paragraphs", {"n": 2}, "Para one.\n***\nPara two.", "One.\n***\n***\nTwo."),
    ("format:json", {}, '```json\n{"a": [1, 2]}\n```', 'Here it is: {"a": 1}'),
    ("format:bullets", {"n": 2}, "Intro\n* one\n- two\n", "* one\n* two\n* three"),
    ("format:title", {}, "<<A Poem>>\nRoses are red.", "A Poem\nRoses are red. <<>>"),
    ("format:highlights", {"n": 2}, "This is *key* and *also key*.", "Only *one* here."),
    ("format:sections", {"n": 2}, "SECTION 1\nfoo\nSECTION 2\nbar", "SECTION 1\nfoo\nbar"),
    ("format:quotation", {}, '"All of it quoted."', '"Half" quoted.'),
    (
        "keywords:include",
        {"keywords": ["river", "Bank"]},
        "The riverbank is here.",
        "The river is here.",
    ),
    ("keywords:exclude", {"forbidden": ["bad"]}, "Badge and badly are fine.", "This is Bad."),
    (
        "keywords:frequency",
        {"keyword": "cat", "n": 2, "relation": "at least"},
        "One cat and a catalog.",
        "One cat and a dog.",
    ),
    (
        "keywords:letter_frequency",
        {"letter": "z", "n": 3, "relation": "at least"},
        "Zebras zigzag lazily.",
        "Zebras run.",
    ),
    ("case:lowercase", {}, "all lower case, 123!", "all lower except One."),
    ("case:uppercase", {}, "THIS IS ALL IN CAPITAL LETTERS, 42!", "ALL UPPEr"),
    (
        "case:capital_words",
        {"n": 2, "relation": "at most"},
        "Use NASA and the FBI data.",
        "USE NASA AND FBI.",
    ),
    ("punctuation:no_commas", {}, "No commas here.", "One, two."),
    ("start:phrase", {"phrase": "My answer is"}, "  my answer is yes.", "Well, my answer is yes."),
    (
        "end:phrase",
        {"phrase": "Any other questions?"},
        "Done. Any other questions?",
        "Any other questions? Bye.",
    ),
    ("content:postscript", {}, "Hello.\n\np. s. See you soon.", "Hello. I wrote a PS nowhere."),
    ("content:placeholders", {"n": 2}, "Send to [name] at [address].", "Send to [name]."),
    (
        "language:response_language",
        {"language": "es"},
        "El perro come la comida que está en el plato de la cocina.",
        "The dog eats the food that is on the plate in the kitchen.",
    ),
]


@pytest.mark.parametrize(("cid", "params", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_each_constraint_accepts_good_and_rejects_bad(cid, params, good, bad):
    constraint = C.build({"id": cid, "params": params})
    ok, reason = constraint.check(good)
    assert ok, reason
    ok, reason = constraint.check(bad)
    assert not ok
    assert reason
    assert constraint.instruction().strip()


def test_every_registered_type_has_a_case():
    assert len(C.REGISTRY) >= 15
    assert set(C.REGISTRY) == {c[0] for c in CASES}


def test_counts_in_reasons_and_relations():
    result = C.build({"id": "length:max_words", "params": {"n": 2}}).check("a b c")
    assert result == (False, "3 words, violates 'at most 2'")
    assert C.compare(3, "exactly", 3) and not C.compare(2, "at least", 3)


def test_paragraph_and_bullet_edge_cases():
    # IFEval's rules: *** divides, blank lines do not; an empty middle paragraph fails
    assert len(C.paragraphs("***\none\n\ntwo\n***\nthree\n***")) == 2
    assert C.paragraphs("one *** *** two") is None
    # bold lines and horizontal rules are not bullets
    bullets = C.build({"id": "format:bullets", "params": {"n": 1}})
    assert bullets.check("**Bold heading**\n* the only bullet\n***")[0]


def test_json_rejects_fence_with_trailing_text():
    check = C.build({"id": "format:json", "params": {}}).check
    assert not check('```json\n{"a": 1}\n```\nHope this helps!')[0]
    assert check("[1, 2, 3]")[0]


def test_words_and_commas_count_as_ifeval_does():
    assert C.words("It's well-known: snake_case.") == ["It", "s", "well", "known", "snake_case"]
    assert C.build({"id": "punctuation:no_commas"}).check("full-width， only")[0]


def test_language_identification_and_old_id():
    assert C.identify_language("Der Hund ist nicht im Haus, er ist im Garten.")[0] == "de"
    assert C.identify_language("THE DOG IS NOT IN THE HOUSE, IT IS IN THE GARDEN.")[0] == "en"
    french = C.build({"id": "language:response_language", "params": {"language": "fr"}})
    assert french.check("Le chien est dans le jardin et il dort au soleil.")[0]
    assert not french.check("Der Hund ist im Garten und schläft in der Sonne.")[0]
    # nothing to identify counts as followed, as in IFEval
    assert french.check("12345")[0]
    # lists saved with the old id still load, under the new id
    old = C.loads('[{"id": "language:stopword_heuristic", "params": {"language": "es"}}]')
    assert old[0].id == "language:response_language"
    with pytest.raises(C.ConstraintError, match="unknown language 'xx'"):
        C.build({"id": "language:response_language", "params": {"language": "xx"}})


def test_case_constraints_require_english():
    lower = C.build({"id": "case:lowercase"})
    assert lower.check("the dog sleeps in the garden all afternoon.")[0]
    assert not lower.check("le chien dort dans le jardin tout l'après-midi.")[0]
    assert not lower.check("123")[0]  # no cased letter: str.islower() is False, as in IFEval


def test_round_trip_and_check_all():
    items = [C.build({"id": c[0], "params": c[1]}) for c in CASES]
    restored = C.loads(C.dumps(items))
    assert restored == items
    results = C.check_all("One two three four five.", restored[:2])
    assert [(r.id, r.ok) for r in results] == [
        ("length:max_words", True),
        ("length:min_words", True),
    ]
    assert "at most 5 words" in C.render_instructions(items[:1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"id": "x"}', "must be a JSON array"),
        ('[{"id": "length:nope"}]', "constraint #0: unknown constraint id 'length:nope'"),
        ('[{"id": "length:max_words", "params": {"n": 0}}]', "n: Input should be greater"),
        ('[{"id": "length:max_words", "params": {"m": 3}}]', "constraint 'length:max_words'"),
        ('[{"params": {}}]', "needs an 'id' field"),
        ('[{"id": "format:json", "extra": 1}]', "unexpected fields ['extra']"),
    ],
)
def test_bad_specs_give_clear_errors(text, message):
    with pytest.raises(C.ConstraintError, match=None) as info:
        C.loads(text)
    assert message in str(info.value)
