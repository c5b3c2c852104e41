"""MT-Bench: answer generation, single-answer and pairwise judging, scores, radar plot.

Files follow FastChat's `llm_judge` layout so that results are interchangeable:
questions (`question.jsonl`), GPT-4 reference answers, `judge_prompts.jsonl`, answer JSONL
(`question_id`, `answer_id`, `model_id`, `choices`: [{index, turns}], `tstamp`) and judgment
JSONL (`question_id`, `model`, `judge`: [judge model, prompt name], `user_prompt`,
`judgment`, `score`, `turn`, `tstamp`). Judge prompts are filled exactly as FastChat
fills them (`str.format` over the same fields), and ratings are parsed with FastChat's
rule (`[[x]]`, else `[x]`, else -1, and -1 is dropped from the scores).
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import EvalError, answered, read_jsonl, require
from helpsteer.llm import ChatRequest
from judge.parsing import fastchat_pair_winner, fastchat_rating
from judge.prompts import JudgePrompt, PromptError, load_fastchat

# FastChat's gen_model_answer temperatures by category; categories not listed use 0.7.
TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
    "arena-hard-200": 0.0,
}
NEED_REF_CATEGORIES = ("math", "reasoning", "coding", "arena-hard-200")
ERROR_OUTPUT = "$ERROR$"
CATEGORIES = (
    "writing",
    "roleplay",
    "reasoning",
    "math",
    "coding",
    "extraction",
    "stem",
    "humanities",
)


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str
    turns: list[str]


@dataclass
class BenchData:
    questions: list[Question]
    references: dict[int, list[str]]
    prompts: dict[str, JudgePrompt]


def _reference_file(folder: Path, judge_model: str) -> Path | None:
    for candidate in (
        folder / "reference_answer" / f"{judge_model}.jsonl",
        folder / f"reference_answer_{judge_model}.jsonl",
    ):
        if candidate.is_file():
            return candidate
    return None


def load_bench(
    folder: Path, judge_prompts: Path | None = None, reference_model: str = "gpt-4"
) -> BenchData:
    """Questions, reference answers and judge prompts from a FastChat-layout folder."""
    folder = Path(folder)
    question_file = folder / "question.jsonl"
    if not question_file.is_file():
        raise EvalError(f"{folder}: no question.jsonl (expected FastChat's MT-Bench layout)")
    questions = []
    for i, row in enumerate(read_jsonl(question_file, "questions"), start=1):
        where = f"{question_file}:{i}"
        qid = require(row, "question_id", int, where)
        turns = require(row, "turns", list, where)
        if not turns or not all(isinstance(t, str) for t in turns):
            raise EvalError(f"{where}: field 'turns' must be a non-empty list of strings")
        category = require(row, "category", str, where)
        questions.append(Question(qid, category, turns))
    references: dict[int, list[str]] = {}
    ref_file = _reference_file(folder, reference_model)
    if ref_file is not None:
        for i, row in enumerate(read_jsonl(ref_file, "reference answers"), start=1):
            references[row["question_id"]] = _answer_turns(row, f"{ref_file}:{i}")
    prompt_file = judge_prompts or _find_prompts(folder)
    try:
        prompts = load_fastchat(prompt_file)
    except PromptError as exc:
        raise EvalError(str(exc)) from None
    return BenchData(questions, references, prompts)


def _find_prompts(folder: Path) -> Path:
    for candidate in (folder / "judge_prompts.jsonl", folder.parent / "judge_prompts.jsonl"):
        if candidate.is_file():
            return candidate
    raise EvalError(f"{folder}: no judge_prompts.jsonl beside the questions or one folder up")


def _answer_turns(row: dict[str, Any], where: str) -> list[str]:
    choices = require(row, "choices", list, where)
    if not choices or not isinstance(choices[0], dict):
        raise EvalError(f"{where}: field 'choices' must hold at least one {{index, turns}}")
    turns = choices[0].get("turns")
    if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
        raise EvalError(f"{where}: choices[0].turns must be a list of strings")
    return turns


def select(questions: list[Question], limit: int | None, ids: list[int] | None) -> list[Question]:
    chosen = [q for q in questions if not ids or q.question_id in ids]
    if ids:
        missing = sorted(set(ids) - {q.question_id for q in chosen})
        if missing:
            raise EvalError(f"question ids not in the question file: {missing}")
    return chosen[:limit] if limit else chosen


# ------------------------------------------------------------------ answers


def answer_id(model_id: str, question_id: int, turns: list[str]) -> str:
    digest = hashlib.sha256(f"{model_id}\x00{question_id}\x00{turns}".encode()).hexdigest()
    return digest[:22]


def generate_answers(
    client: Any,
    questions: list[Question],
    model_id: str,
    max_tokens: int = 1024,
    seed: int = 0,
    reporter: Any = None,
) -> list[dict[str, Any]]:
    """Both (all) turns for every question, turn by turn: each turn's requests go out in one
    batch, carrying the model's own earlier answers as the conversation."""
    conversations: dict[int, list[dict[str, str]]] = {q.question_id: [] for q in questions}
    answers: dict[int, list[str]] = {q.question_id: [] for q in questions}
    for turn in range(max(len(q.turns) for q in questions)):
        active = [q for q in questions if turn < len(q.turns)]
        requests = []
        for q in active:
            conversations[q.question_id].append({"role": "user", "content": q.turns[turn]})
            requests.append(
                ChatRequest(
                    messages=conversations[q.question_id],
                    temperature=TEMPERATURE.get(q.category, 0.7),
                    max_tokens=max_tokens,
                    seed=seed,
                )
            )
        done = answered(client, requests, reporter)
        for q, completion in zip(active, done, strict=True):
            text = ERROR_OUTPUT if completion.error else completion.text.strip()
            answers[q.question_id].append(text)
            conversations[q.question_id].append({"role": "assistant", "content": text})
    return [
        {
            "question_id": q.question_id,
            "answer_id": answer_id(model_id, q.question_id, answers[q.question_id]),
            "model_id": model_id,
            "choices": [{"index": 0, "turns": answers[q.question_id]}],
            "tstamp": time.time(),
        }
        for q in questions
    ]


def load_answers(path: Path) -> dict[int, list[str]]:
    """question_id -> turns from a FastChat answer JSONL (e.g. a baseline model's)."""
    rows = read_jsonl(path, "answers")
    return {
        require(r, "question_id", int, f"{path}:{i}"): _answer_turns(r, f"{path}:{i}")
        for i, r in enumerate(rows, start=1)
    }


# ------------------------------------------------------------------ single grading


def single_prompt_name(category: str, multi_turn: bool) -> str:
    base = "single-math-v1" if category in NEED_REF_CATEGORIES else "single-v1"
    return base + ("-multi-turn" if multi_turn else "")


def _reference_fields(reference: list[str] | None, multi_turn: bool) -> dict[str, str]:
    """FastChat's `ref_answer_1` (and `ref_answer_2` for the second turn)."""
    if reference is None:
        return {}
    fields = {"ref_answer_1": reference[0]}
    if multi_turn:
        fields["ref_answer_2"] = reference[1]
    return fields


def single_user_prompt(
    prompt: JudgePrompt,
    question: Question,
    answer: list[str],
    reference: list[str] | None,
    multi_turn: bool,
) -> str:
    """The judge's user message, filled with the same fields FastChat's `run_judge_single`
    passes."""
    kwargs = _reference_fields(reference, multi_turn)
    if multi_turn:
        return prompt.prompt_template.format(
            question_1=question.turns[0],
            question_2=question.turns[1],
            answer_1=answer[0],
            answer_2=answer[1],
            **kwargs,
        )
    return prompt.prompt_template.format(question=question.turns[0], answer=answer[0], **kwargs)


def judge_messages(prompt: JudgePrompt, user_prompt: str) -> list[dict[str, str]]:
    messages = []
    if prompt.system_prompt:
        messages.append({"role": "system", "content": prompt.system_prompt})
    messages.append({"role": "user", "content": user_prompt})
    return messages


@dataclass(frozen=True)
class Planned:
    question: Question
    turn: int
    prompt: JudgePrompt
    user_prompt: str


def plan_single(
    data: BenchData, questions: list[Question], answers: dict[int, list[str]]
) -> tuple[list[Planned], list[str]]:
    """Judgments to ask for, and the questions skipped (no answer, no reference) with why."""
    planned, skipped = [], []
    for q in questions:
        turns = answers.get(q.question_id)
        if turns is None:
            skipped.append(f"question {q.question_id}: no answer")
            continue
        needs_ref = q.category in NEED_REF_CATEGORIES
        reference = data.references.get(q.question_id)
        if needs_ref and reference is None:
            skipped.append(f"question {q.question_id}: category {q.category} needs a reference")
            continue
        for multi_turn in (False, True) if len(q.turns) > 1 and len(turns) > 1 else (False,):
            name = single_prompt_name(q.category, multi_turn)
            prompt = data.prompts.get(name)
            if prompt is None:
                raise EvalError(f"the judge prompts have no {name!r}")
            text = single_user_prompt(
                prompt, q, turns, reference if needs_ref else None, multi_turn
            )
            planned.append(Planned(q, 2 if multi_turn else 1, prompt, text))
    return planned, skipped


def judge_single(
    client: Any,
    judge_model: str,
    model_id: str,
    planned: list[Planned],
    max_tokens: int = 2048,
    reporter: Any = None,
) -> list[dict[str, Any]]:
    requests = [
        ChatRequest(
            messages=judge_messages(p.prompt, p.user_prompt), temperature=0, max_tokens=max_tokens
        )
        for p in planned
    ]
    done = client.complete_batch(requests, reporter=reporter) if requests else []
    rows = []
    for p, completion in zip(planned, done, strict=True):
        judgment = ERROR_OUTPUT if completion.error else completion.text
        rows.append(
            {
                "question_id": p.question.question_id,
                "model": model_id,
                "judge": [judge_model, p.prompt.name],
                "user_prompt": p.user_prompt,
                "judgment": judgment,
                "score": fastchat_rating(judgment) if not completion.error else -1,
                "turn": p.turn,
                "tstamp": time.time(),
            }
        )
    return rows


def single_scores(
    judgments: list[dict[str, Any]], categories: dict[int, str]
) -> dict[str, dict[str, Any]]:
    """Per model: mean score per turn, overall, per category; -1 scores are dropped and
    counted, as FastChat's show_result drops them."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in judgments:
        by_model[row["model"]].append(row)
    out = {}
    for model, rows in by_model.items():
        valid = [r for r in rows if r["score"] != -1]
        turns = {f"turn_{t}": _mean([r["score"] for r in valid if r["turn"] == t]) for t in (1, 2)}
        per_category = defaultdict(list)
        for r in valid:
            per_category[categories.get(r["question_id"], "unknown")].append(r["score"])
        out[model] = {
            "score": _mean([r["score"] for r in valid]),
            **turns,
            "categories": {c: _mean(v) for c, v in sorted(per_category.items())},
            "judgments": len(rows),
            "failed_parses": len(rows) - len(valid),
        }
    return out


def _mean(values: list[float]) -> float | None:
    # Unrounded, as FastChat's show_result (pandas mean) reports it; reports round on display.
    return sum(values) / len(values) if values else None


# ------------------------------------------------------------------ pairwise


def pair_prompt_name(category: str, multi_turn: bool) -> str:
    base = "pair-math-v1" if category in NEED_REF_CATEGORIES else "pair-v2"
    return base + ("-multi-turn" if multi_turn else "")


def pair_user_prompt(
    prompt: JudgePrompt,
    question: Question,
    answer_a: list[str],
    answer_b: list[str],
    reference: list[str] | None,
    multi_turn: bool,
) -> str:
    """FastChat's `run_judge_pair` fields."""
    kwargs = _reference_fields(reference, multi_turn)
    if multi_turn:
        return prompt.prompt_template.format(
            question_1=question.turns[0],
            question_2=question.turns[1],
            answer_a_1=answer_a[0],
            answer_b_1=answer_b[0],
            answer_a_2=answer_a[1],
            answer_b_2=answer_b[1],
            **kwargs,
        )
    return prompt.prompt_template.format(
        question=question.turns[0], answer_a=answer_a[0], answer_b=answer_b[0], **kwargs
    )


def judge_pairwise(
    client: Any,
    judge_model: str,
    data: BenchData,
    questions: list[Question],
    model_1: tuple[str, dict[int, list[str]]],
    model_2: tuple[str, dict[int, list[str]]],
    max_tokens: int = 2048,
    reporter: Any = None,
) -> list[dict[str, Any]]:
    """FastChat pairwise records: game 1 shows model_1 as A, game 2 swaps them."""
    name_1, answers_1 = model_1
    name_2, answers_2 = model_2
    games = []
    for q in questions:
        a, b = answers_1.get(q.question_id), answers_2.get(q.question_id)
        if a is None or b is None:
            continue
        needs_ref = q.category in NEED_REF_CATEGORIES
        reference = data.references.get(q.question_id) if needs_ref else None
        if needs_ref and reference is None:
            continue
        two = len(q.turns) > 1 and len(a) > 1 and len(b) > 1
        for multi_turn in (False, True) if two else (False,):
            prompt = data.prompts[pair_prompt_name(q.category, multi_turn)]
            g1 = pair_user_prompt(prompt, q, a, b, reference, multi_turn)
            g2 = pair_user_prompt(prompt, q, b, a, reference, multi_turn)
            games.append((q, 2 if multi_turn else 1, prompt, g1, g2))
    requests = [
        ChatRequest(messages=judge_messages(p, text), temperature=0, max_tokens=max_tokens)
        for _, _, p, g1, g2 in games
        for text in (g1, g2)
    ]
    done = client.complete_batch(requests, reporter=reporter) if requests else []
    rows = []
    for i, (q, turn, prompt, g1, g2) in enumerate(games):
        j1, j2 = (ERROR_OUTPUT if c.error else c.text for c in done[2 * i : 2 * i + 2])
        rows.append(
            {
                "question_id": q.question_id,
                "model_1": name_1,
                "model_2": name_2,
                "g1_winner": _winner(fastchat_pair_winner(j1), name_1, name_2),
                "g2_winner": _winner(fastchat_pair_winner(j2), name_2, name_1),
                "judge": [judge_model, prompt.name],
                "g1_user_prompt": g1,
                "g1_judgment": j1,
                "g2_user_prompt": g2,
                "g2_judgment": j2,
                "turn": turn,
                "tstamp": time.time(),
            }
        )
    return rows


def _winner(verdict: str, shown_a: str, shown_b: str) -> str:
    return {"A": shown_a, "B": shown_b}.get(verdict, verdict)


def pairwise_scores(rows: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """Win / loss / tie of `model`; a game whose two orders disagree counts as a tie, as
    FastChat's show_result does."""
    win = loss = tie = errors = 0
    for r in rows:
        g1, g2 = r["g1_winner"], r["g2_winner"]
        if "error" in (g1, g2):
            errors += 1
            continue
        winner = g1 if g1 == g2 else "tie"
        if winner == model:
            win += 1
        elif winner == "tie":
            tie += 1
        else:
            loss += 1
    total = win + loss + tie
    return {
        "win": win,
        "loss": loss,
        "tie": tie,
        "errors": errors,
        "win_rate": win / total if total else None,
        "win_rate_adjusted": (win + 0.5 * tie) / total if total else None,
    }


# ------------------------------------------------------------------ plot


def radar_plot(per_model: dict[str, dict[str, float | None]], path: Path) -> None:
    """One polygon per model over the categories (matplotlib, Agg, PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import math

    import matplotlib.pyplot as plt

    from helpsteer.atomic import atomic_path

    # All eight MT-Bench axes always, so shapes compare across runs; a category without a
    # parsed score sits at 0.
    categories = list(CATEGORIES)
    categories += sorted({c for v in per_model.values() for c in v} - set(categories))
    angles = [2 * math.pi * i / len(categories) for i in range(len(categories))]
    fig = plt.figure(figsize=(5.5, 6.2), dpi=100)
    ax = fig.add_subplot(projection="polar")
    for model, scores in per_model.items():
        values = [scores.get(c) or 0.0 for c in categories]
        ax.plot([*angles, angles[0]], [*values, values[0]], label=model)
        ax.fill([*angles, angles[0]], [*values, values[0]], alpha=0.15)
    ax.set_xticks(angles)
    ax.set_xticklabels(categories)
    ax.set_ylim(0, 10)
    ax.set_title("MT-Bench score by category")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# ------------------------------------------------------------------ a whole run


@dataclass
class MTBenchRun:
    """What `hs eval mt-bench` does; every field is a CLI option."""

    bench: Path
    out: Path
    model: str = "local"
    judge: str | None = None
    """Judge model spec; None means the answering model judges itself."""
    mode: str = "single"
    baseline: Path | None = None
    """Answer JSONL of the baseline model (pairwise mode)."""
    limit: int | None = None
    question_ids: list[int] | None = None
    answer_tokens: int = 1024
    judge_tokens: int = 2048
    cache_dir: Path | None = None
    model_id: str | None = None
    engine: dict[str, Any] | None = None
    """`{"engine": "ray", "ray": {...}}`: answer and judge on a Ray cluster."""


def run_mtbench(run: MTBenchRun, reporter: Any = None) -> dict[str, Any]:
    from eval.common import llm_clients, model_label, parse_model_spec, write_jsonl, write_run
    from helpsteer.atomic import write_text

    started = time.perf_counter()
    if run.mode not in ("single", "pairwise"):
        raise EvalError(f"mode {run.mode!r}: expected single or pairwise")
    if run.mode == "pairwise" and run.baseline is None:
        raise EvalError("pairwise mode needs --baseline ANSWERS.jsonl")
    data = load_bench(run.bench)
    questions = select(data.questions, run.limit, run.question_ids)
    cache = run.cache_dir or run.out / "llm_cache"
    model_cfg = parse_model_spec(run.model, cache)
    judge_cfg = parse_model_spec(run.judge, cache) if run.judge else model_cfg
    model_id = run.model_id or model_label(model_cfg)
    judge_id = model_label(judge_cfg)
    with llm_clients([model_cfg, judge_cfg], run.engine, cache) as open_client:
        client = open_client(model_cfg)
        answer_rows = generate_answers(client, questions, model_id, run.answer_tokens, 0, reporter)
        write_jsonl(run.out / "model_answer" / f"{model_id}.jsonl", answer_rows)
        answers = {r["question_id"]: r["choices"][0]["turns"] for r in answer_rows}
        judge_client = client if judge_cfg == model_cfg else open_client(judge_cfg)
        results, skipped = _judge(
            run, data, questions, answers, model_id, judge_id, judge_client, reporter
        )
        usage = client.stats.as_dict()
    results["skipped"] = skipped
    results["usage"] = usage
    config = {
        "model": run.model,
        "model_id": model_id,
        "judge": judge_id,
        "mode": run.mode,
        "questions": len(questions),
        "answer_max_tokens": run.answer_tokens,
        "judge_max_tokens": run.judge_tokens,
        "bench": str(run.bench),
    }
    document = write_run(run.out, "mt-bench", results, config, started)
    write_text(run.out / "report.md", markdown_report(document))
    return document


def _judge(run, data, questions, answers, model_id, judge_id, client, reporter):
    from eval.common import write_jsonl

    if run.mode == "pairwise":
        baseline = load_answers(run.baseline)
        base_id = run.baseline.stem
        rows = judge_pairwise(
            client,
            judge_id,
            data,
            questions,
            (model_id, answers),
            (base_id, baseline),
            run.judge_tokens,
            reporter,
        )
        write_jsonl(run.out / "model_judgment" / f"{judge_id}_pair.jsonl", rows)
        scores = pairwise_scores(rows, model_id)
        return {"model": model_id, "baseline": base_id, "pairwise": scores}, []
    planned, skipped = plan_single(data, questions, answers)
    rows = judge_single(client, judge_id, model_id, planned, run.judge_tokens, reporter)
    write_jsonl(run.out / "model_judgment" / f"{judge_id}_single.jsonl", rows)
    categories = {q.question_id: q.category for q in questions}
    scores = single_scores(rows, categories)
    mine = scores.get(model_id, {"score": None, "categories": {}})
    radar_plot({model_id: mine["categories"]}, run.out / "radar.png")
    return {"model": model_id, "single": mine}, skipped


def markdown_report(document: dict[str, Any]) -> str:
    cfg = document["config"]
    lines = [
        f"# MT-Bench: {cfg['model_id']}",
        "",
        f"Judge: {cfg['judge']}; mode: {cfg['mode']}; questions: {cfg['questions']}; "
        f"max tokens: answers {cfg['answer_max_tokens']}, judgments {cfg['judge_max_tokens']}.",
        "",
    ]
    if "single" in document:
        s = document["single"]
        lines += [
            "| score | turn 1 | turn 2 | judgments | unparsed |",
            "|---|---|---|---|---|",
            f"| {_fmt(s['score'])} | {_fmt(s.get('turn_1'))} | {_fmt(s.get('turn_2'))} "
            f"| {s.get('judgments', 0)} | {s.get('failed_parses', 0)} |",
            "",
            "| category | score |",
            "|---|---|",
        ]
        lines += [f"| {c} | {_fmt(v)} |" for c, v in s["categories"].items()]
        lines += ["", "![radar](radar.png)"]
    if "pairwise" in document:
        p = document["pairwise"]
        lines += [
            f"Against {document['baseline']}:",
            "",
            "| win | loss | tie | errors | win rate | adjusted |",
            "|---|---|---|---|---|---|",
            f"| {p['win']} | {p['loss']} | {p['tie']} | {p['errors']} "
            f"| {_fmt(p['win_rate'])} | {_fmt(p['win_rate_adjusted'])} |",
        ]
    if document.get("skipped"):
        lines += ["", "Skipped:", *[f"- {s}" for s in document["skipped"]]]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
