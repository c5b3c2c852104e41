import polars as pl

from helpsteer import exports
from helpsteer.split import assign_splits

MULTI = "Hi\n<extra_id_1>Assistant\nHello!\n<extra_id_1>User\nA joke please."


def test_split_is_deterministic_seeded_and_fractional():
    prompts = pl.Series([f"prompt {i}" for i in range(2000)])
    a = assign_splits(prompts, 0.2, seed=0)
    b = assign_splits(prompts.shuffle(seed=5), 0.2, seed=0)
    c = assign_splits(prompts, 0.2, seed=1)
    as_dict = lambda f: dict(zip(f["prompt"], f["split"], strict=True))  # noqa: E731
    assert as_dict(a) == as_dict(b)
    assert as_dict(a) != as_dict(c)
    share = (a["split"] == "validation").mean()
    assert 0.17 < share < 0.23


def test_a_prompt_s_split_is_its_blake2b_draw():
    import hashlib

    prompts = pl.Series([f"prompt {i}" for i in range(500)] + ["é", "", "a\x00b"])
    got = dict(assign_splits(prompts, 0.3, seed=7).iter_rows())
    for prompt in prompts:
        digest = hashlib.blake2b(f"7\x00{prompt}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big") / 2**64
        assert got[prompt] == ("validation" if draw < 0.3 else "train"), prompt


def _ratings():
    return pl.DataFrame(
        {
            "prompt": ["Single?", MULTI],
            "response": ["Yes.", "Why did the chicken..."],
            "helpfulness": [4, 2],
            "correctness": [3, None],
            "coherence": [4, 4],
            "complexity": [1, 0],
            "verbosity": [2, 1],
        },
        schema_overrides={
            a: pl.Int8
            for a in ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
        },
    )


def test_regression_text_and_nine_slot_label():
    out = exports.regression(_ratings())
    assert out["label"].to_list()[1] == [-100, -100, -100, -100, 2, -100, 4, 0, 1]
    assert out["text"][1] == (
        "<extra_id_0>System\n\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\nHello!\n"
        "<extra_id_1>User\nA joke please.\n<extra_id_1>Assistant\nWhy did the chicken...\n"
        "<extra_id_2>"
    )
    assert [m["role"] for m in out["messages"][1]] == ["user", "assistant", "user", "assistant"]


def test_steerlm_attribute_string_on_assistant_turn():
    out = exports.steerlm(_ratings())
    turns = out["conversations"][0]
    assert turns[0]["from"] == "User" and turns[0]["label"] is None
    assert turns[1]["label"] == "helpfulness:4,correctness:3,coherence:4,complexity:1,verbosity:2"
    assert out["conversations"][1][-1]["label"].startswith("helpfulness:2,coherence:4")


def _preference():
    return pl.DataFrame(
        {
            "pair_id": ["a", "b", "c"],
            "prompt": ["P1", "P2", MULTI],
            "response_1": ["good", "meh", "x"],
            "response_2": ["bad", "great", "y"],
            "preference_strength": [-2, 3, 0],
        }
    )


def test_bt_orients_pairs_and_drops_ties():
    out = exports.bt(_preference())
    assert out["pair_id"].to_list() == ["a", "b"]
    assert out["chosen"][0][-1]["content"] == "good"
    assert out["rejected"][0][-1]["content"] == "bad"
    assert out["chosen"][1][-1]["content"] == "great"
    assert out["preference_strength"].to_list() == [-2, 3]
    # TRL's RewardTrainer makes its loss a margin loss whenever a `margin` column exists
    assert "margin" not in out.columns


def test_bt_margin_is_bt_plus_trls_margin_column():
    out = exports.bt_margin(_preference())
    assert out.drop("margin").equals(exports.bt(_preference()))
    assert out["margin"].to_list() == [2.0, 3.0]


def test_dpo_prompt_messages_and_single_assistant_replies():
    out = exports.dpo(_preference())
    assert out["prompt"].to_list()[0] == [{"role": "user", "content": "P1"}]
    assert out["chosen"].to_list()[1] == [{"role": "assistant", "content": "great"}]
    assert out.height == 2


def test_prepared_conversations_give_the_same_exports_and_stay_out_of_them():
    table = _ratings()
    names = ["ratings", "regression", "regression_columns", "steerlm"]
    prepared = exports.prepare({"ratings": table}, names)["ratings"]
    assert exports.CONVERSATION in prepared.columns
    for name in names:
        make = exports.RATINGS_FORMATS[name]
        out = make(prepared)
        assert out.equals(make(table)), name
        assert exports.CONVERSATION not in out.columns, name
    # one format alone gains nothing from sharing: the table is left as it is
    assert exports.prepare({"ratings": table}, ["regression"])["ratings"] is table
