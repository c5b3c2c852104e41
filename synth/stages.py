"""The synth pipeline stages; importing this module registers them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from helpsteer import constraints as cons
from helpsteer.conversation import Message, flat_to_messages
from helpsteer.io import file_fingerprint
from helpsteer.llm import LLMConfig
from helpsteer.pipeline import (
    Needs,
    PipelineError,
    StageConfig,
    StageContext,
    Tables,
    llm_needs,
    stage,
)
from synth.dialog import remove_politeness, transcript
from synth.engine import (
    Generator,
    Rejects,
    SynthConfig,
    append_prompts,
    prompt_frame,
    short_hash,
    stable_int,
)

# --- seed ---------------------------------------------------------------------------------


class SeedConfig(StageConfig):
    path: str = Field(description="JSON Lines of prompts: `messages`, `prompt` or `text` per row.")


def _seed_messages(row: Any) -> list[Message]:
    """The conversation of one seed row, or raise ValueError saying what is wrong."""
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("field 'messages': expected a non-empty list of {role, content}")
        for i, m in enumerate(messages):
            if (
                not isinstance(m, dict)
                or m.get("role") not in ("user", "assistant")
                or not isinstance(m.get("content"), str)
            ):
                raise ValueError(
                    f"field 'messages'[{i}]: expected {{role: user|assistant, content}}"
                )
        if messages[-1]["role"] != "user":
            raise ValueError("field 'messages': the last turn must be the user's")
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    for name in ("prompt", "text"):
        if name in row:
            if not isinstance(row[name], str) or not row[name].strip():
                raise ValueError(f"field {name!r}: expected a non-empty string")
            if name == "prompt":
                messages = flat_to_messages(row[name])
                if messages[-1]["role"] != "user":
                    raise ValueError("field 'prompt': the last turn must be the user's")
                return messages
            return [{"role": "user", "content": row[name]}]
    raise ValueError("expected a 'messages', 'prompt' or 'text' field")


def read_seed_file(ctx: StageContext, path: str) -> pl.DataFrame:
    file = Path(path)
    if not file.is_file():
        raise PipelineError(f"{path}: seed file not found")
    rejects, rows = Rejects(), []
    with open(file, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                messages = _seed_messages(row)
            except (json.JSONDecodeError, ValueError) as exc:
                rejects.add(path, line_no, f"{path}:{line_no}: {exc}", line.rstrip("\n"))
                continue
            meta = {k: v for k, v in row.items() if k not in ("messages", "prompt", "text")}
            rows.append((messages, {"file": path, "line": line_no, **meta}))
    frame = prompt_frame(ctx, rows, rejects)
    rejects.flush(ctx)
    return frame


@stage("synth.seed", SeedConfig, fingerprint_extra=lambda c: file_fingerprint(c.path))
def seed(ctx: StageContext, tables: Tables, cfg: SeedConfig):
    """Read seed prompts from JSON Lines into the `prompts` table (bad lines are rejected)."""
    frame = read_seed_file(ctx, cfg.path)
    ctx.info["prompts"] = frame.height
    return {"prompts": append_prompts(tables, frame)}


# --- open QA ------------------------------------------------------------------------------


class OpenQAConfig(SynthConfig):
    topics: list[str] = Field(default_factory=list, description="Macro topics; empty: generate.")
    n_topics: int = Field(3, ge=1, description="Generated macro topics (without `topics`).")
    n_subtopics: int = Field(2, ge=1, description="Subtopics per topic.")
    n_questions: int = Field(2, ge=1, description="Questions per subtopic.")
    revise: bool = Field(True, description="Also make a more detailed version of each question.")
    keep_unrevised: bool = Field(True, description="Keep the original questions too.")


def _topics(gen: Generator, given: list[str], n: int) -> list[str]:
    if given:
        return list(given)
    return gen.ask_lists("topics", [{}], n, "topics")[0]


def _with_revisions(gen, rows, template: str, key: str, revise: bool, keep: bool):
    """rows: (text, meta); adds revised versions by `template` (value name `key`)."""
    out = []
    revised = (
        gen.ask_singles(template, [{key: t, **m} for t, m in rows], "revisions") if revise else []
    )
    for i, (text, meta) in enumerate(rows):
        if keep or not revise:
            out.append(([{"role": "user", "content": text}], {**meta, "kind": "original"}))
        if revise and revised[i]:
            out.append(
                (
                    [{"role": "user", "content": revised[i]}],
                    {**meta, "kind": "revision", "original": text},
                )
            )
    return out


@stage("synth.open_qa", OpenQAConfig)
def open_qa(ctx: StageContext, tables: Tables, cfg: OpenQAConfig):
    """Open questions: macro topics -> subtopics -> questions -> more detailed revisions."""
    gen = Generator(ctx, cfg, "open_qa")
    topics = _topics(gen, cfg.topics, cfg.n_topics)
    subs = gen.ask_lists("subtopics", [{"topic": t} for t in topics], cfg.n_subtopics, "subtopics")
    pairs = [(t, s) for t, found in zip(topics, subs, strict=True) for s in found]
    found_q = gen.ask_lists(
        "questions", [{"topic": t, "subtopic": s} for t, s in pairs], cfg.n_questions, "questions"
    )
    rows = [
        (q, {"topic": t, "subtopic": s})
        for (t, s), qs in zip(pairs, found_q, strict=True)
        for q in qs
    ]
    items = _with_revisions(gen, rows, "revision", "question", cfg.revise, cfg.keep_unrevised)
    frame = prompt_frame(ctx, items, gen.rejects)
    ctx.info["counts"] = {
        "topics": len(topics),
        "subtopics": len(pairs),
        "questions": len(rows),
        "prompts": frame.height,
    }
    gen.finish()
    return {"prompts": append_prompts(tables, frame)}


# --- writing ------------------------------------------------------------------------------

TEXT_TYPES = ["essay", "poem", "email", "short story", "blog post", "speech", "product review"]


class WritingConfig(SynthConfig):
    topics: list[str] = Field(default_factory=list, description="Topics; empty: generate.")
    n_topics: int = Field(2, ge=1)
    text_types: list[str] = Field(default_factory=lambda: list(TEXT_TYPES), min_length=1)
    n_tasks: int = Field(1, ge=1, description="Tasks per (topic, text type).")
    revise: bool = True
    keep_unrevised: bool = True


@stage("synth.writing", WritingConfig)
def writing(ctx: StageContext, tables: Tables, cfg: WritingConfig):
    """Writing tasks per topic and text type (essay, poem, email, ...), with revisions."""
    gen = Generator(ctx, cfg, "writing")
    topics = _topics(gen, cfg.topics, cfg.n_topics)
    combos = [(t, k) for t in topics for k in cfg.text_types]
    found = gen.ask_lists(
        "tasks", [{"topic": t, "text_type": k} for t, k in combos], cfg.n_tasks, "tasks"
    )
    rows = [
        (task, {"topic": t, "text_type": k})
        for (t, k), tasks in zip(combos, found, strict=True)
        for task in tasks
    ]
    items = _with_revisions(gen, rows, "revision", "task", cfg.revise, cfg.keep_unrevised)
    frame = prompt_frame(ctx, items, gen.rejects)
    ctx.info["counts"] = {"topics": len(topics), "tasks": len(rows), "prompts": frame.height}
    gen.finish()
    return {"prompts": append_prompts(tables, frame)}


# --- closed QA ----------------------------------------------------------------------------


class ClosedQAConfig(SynthConfig):
    documents: str = Field(description="JSON Lines file with one document per line.")
    text_field: str = "text"
    id_field: str | None = "id"
    n_questions: int = Field(2, ge=1, description="Instructions per document.")
    order: Literal["random", "question_first", "document_first"] = "random"
    max_document_chars: int = Field(
        4000, ge=100, description="The document is cut to this length in the generation request."
    )


def read_documents(path: str, text_field: str, id_field: str | None, rejects: Rejects):
    file = Path(path)
    if not file.is_file():
        raise PipelineError(f"{path}: documents file not found")
    docs = []
    with open(file, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                rejects.add(path, line_no, f"{path}:{line_no}: invalid JSON: {exc.msg}", line)
                continue
            text = row.get(text_field) if isinstance(row, dict) else None
            if not isinstance(text, str) or not text.strip():
                reason = f"{path}:{line_no}: field {text_field!r}: expected a non-empty string"
                rejects.add(path, line_no, reason, line.rstrip("\n"))
                continue
            doc_id = row.get(id_field) if id_field else None
            docs.append({"id": str(doc_id if doc_id is not None else line_no), "text": text})
    return docs


@stage("synth.closed_qa", ClosedQAConfig, fingerprint_extra=lambda c: file_fingerprint(c.documents))
def closed_qa(ctx: StageContext, tables: Tables, cfg: ClosedQAConfig):
    """Instructions over given documents; the prompt puts question and document in either order."""
    gen = Generator(ctx, cfg, "closed_qa")
    docs = read_documents(cfg.documents, cfg.text_field, cfg.id_field, gen.rejects)
    found = gen.ask_lists(
        "questions",
        [{"document": d["text"][: cfg.max_document_chars]} for d in docs],
        cfg.n_questions,
        "questions",
    )
    items = []
    for doc, questions in zip(docs, found, strict=True):
        for q in questions:
            order = cfg.order
            if order == "random":
                pick = stable_int(ctx.seed, doc["id"], q) % 2
                order = "question_first" if pick else "document_first"
            messages = gen.templates[order].messages(question=q, document=doc["text"])
            meta = {"document_id": doc["id"], "question": q, "order": order}
            items.append(([m for m in messages if m["role"] == "user"], meta))
    frame = prompt_frame(ctx, items, gen.rejects)
    ctx.info["counts"] = {"documents": len(docs), "prompts": frame.height}
    gen.finish()
    return {"prompts": append_prompts(tables, frame)}


# --- math and code ------------------------------------------------------------------------

DOMAIN_NAMES = {"math": "math", "python": "Python programming"}


class MathCodeConfig(SynthConfig):
    domains: list[Literal["math", "python"]] = Field(
        default_factory=lambda: ["math", "python"], min_length=1
    )
    levels: list[str] = Field(
        default_factory=lambda: ["elementary school", "high school", "university"], min_length=1
    )
    keywords: list[str] = Field(
        default_factory=list, description="Given keywords (used at every level); empty: generate."
    )
    n_keywords: int = Field(2, ge=1, description="Generated keywords per (domain, level).")
    n_problems: int = Field(2, ge=1, description="Problems per keyword.")
    python_variants: bool = Field(True, description="Also ask each math problem for Python code.")


@stage("synth.math_code", MathCodeConfig)
def math_code(ctx: StageContext, tables: Tables, cfg: MathCodeConfig):
    """Math and Python problems: keywords per level -> problems per keyword -> Python variants."""
    gen = Generator(ctx, cfg, "math_code")
    combos = [(d, lvl) for d in cfg.domains for lvl in cfg.levels]
    if cfg.keywords:
        keyword_lists = [list(cfg.keywords) for _ in combos]
    else:
        keyword_lists = gen.ask_lists(
            "keywords",
            [{"domain": DOMAIN_NAMES[d], "level": lvl} for d, lvl in combos],
            cfg.n_keywords,
            "keywords",
        )
    triples = [(d, lvl, k) for (d, lvl), ks in zip(combos, keyword_lists, strict=True) for k in ks]
    found = gen.ask_lists(
        "problems",
        [{"domain": DOMAIN_NAMES[d], "level": lvl, "keyword": k} for d, lvl, k in triples],
        cfg.n_problems,
        "problems",
    )
    rows = [
        (p, {"domain": d, "level": lvl, "keyword": k})
        for (d, lvl, k), ps in zip(triples, found, strict=True)
        for p in ps
    ]
    items = [([{"role": "user", "content": p}], {**m, "kind": "problem"}) for p, m in rows]
    math_rows = [(p, m) for p, m in rows if m["domain"] == "math"]
    if cfg.python_variants and math_rows:
        variants = gen.ask_singles(
            "python_variant", [{"problem": p} for p, _ in math_rows], "python variants"
        )
        for (p, m), v in zip(math_rows, variants, strict=True):
            if v:
                meta = {**m, "kind": "python_variant", "original": p}
                items.append(([{"role": "user", "content": v}], meta))
    frame = prompt_frame(ctx, items, gen.rejects)
    ctx.info["counts"] = {"keywords": len(triples), "problems": len(rows), "prompts": frame.height}
    gen.finish()
    return {"prompts": append_prompts(tables, frame)}


# --- instruction following ----------------------------------------------------------------

DEFAULT_CONSTRAINTS: list[dict[str, Any]] = [
    {"id": "length:max_words", "params": {"n": 80}},
    {"id": "length:max_words", "params": {"n": 150}},
    {"id": "length:min_words", "params": {"n": 120}},
    {"id": "length:sentences", "params": {"n": 5, "relation": "at most"}},
    {"id": "length:paragraphs", "params": {"n": 3}},
    {"id": "format:bullets", "params": {"n": 3}},
    {"id": "format:bullets", "params": {"n": 5}},
    {"id": "format:title"},
    {"id": "format:highlights", "params": {"n": 2}},
    {"id": "format:sections", "params": {"n": 2, "splitter": "SECTION"}},
    {"id": "format:json"},
    {"id": "format:quotation"},
    {"id": "case:lowercase"},
    {"id": "case:uppercase"},
    {"id": "punctuation:no_commas"},
    {"id": "start:phrase", "params": {"phrase": "In short"}},
    {"id": "end:phrase", "params": {"phrase": "Is there anything else I can help with?"}},
    {"id": "content:postscript", "params": {"marker": "P.S."}},
    {"id": "content:placeholders", "params": {"n": 2}},
    {"id": "keywords:frequency", "params": {"keyword": "because", "n": 2}},
    {"id": "keywords:letter_frequency", "params": {"letter": "z", "n": 3}},
]

# Pairs that cannot both hold (or make each other meaningless) are never drawn together.
_CONFLICTS = {
    frozenset({"format:json", "format:quotation"}),
    frozenset({"format:json", "start:phrase"}),
    frozenset({"format:json", "end:phrase"}),
    frozenset({"format:json", "content:postscript"}),
    frozenset({"format:json", "format:title"}),
    frozenset({"format:json", "format:sections"}),
    frozenset({"format:json", "length:paragraphs"}),
    frozenset({"format:quotation", "start:phrase"}),
    frozenset({"format:quotation", "end:phrase"}),
    frozenset({"format:quotation", "content:postscript"}),
    frozenset({"end:phrase", "content:postscript"}),
    frozenset({"case:lowercase", "start:phrase"}),
    frozenset({"case:lowercase", "end:phrase"}),
    frozenset({"case:uppercase", "start:phrase"}),
    frozenset({"case:uppercase", "end:phrase"}),
    frozenset({"case:lowercase", "content:postscript"}),
    frozenset({"case:uppercase", "content:postscript"}),
    frozenset({"case:lowercase", "format:sections"}),
}


def compatible(a: cons.Constraint, b: cons.Constraint) -> bool:
    """Two constraints may be combined: different kinds (the part before ':') except
    format, and not a known conflicting pair."""
    kind_a, kind_b = a.id.split(":")[0], b.id.split(":")[0]
    if a.id == b.id or (kind_a == kind_b and kind_a != "format"):
        return False
    return frozenset({a.id, b.id}) not in _CONFLICTS


def draw_constraints(pool: list[cons.Constraint], k: int, rng: random.Random) -> list:
    order = list(pool)
    rng.shuffle(order)
    chosen: list[cons.Constraint] = []
    for candidate in order:
        if all(compatible(candidate, c) for c in chosen):
            chosen.append(candidate)
        if len(chosen) == k:
            break
    return chosen


class InstructionFollowingConfig(SynthConfig):
    use_prompts: bool = Field(
        True, description="Use the single-turn rows of the `prompts` table as base tasks."
    )
    topics: list[str] = Field(
        default_factory=lambda: ["travel", "cooking", "a job interview", "the ocean"],
        description="Topics for generated base tasks when there are no prompts to use.",
    )
    n_tasks: int = Field(2, ge=1, description="Generated base tasks per topic.")
    max_base: int | None = Field(None, ge=1, description="Use at most this many base tasks.")
    constraints_per_prompt: int = Field(2, ge=1, le=4)
    constraint_pool: list[dict[str, Any]] = Field(
        default_factory=lambda: [dict(c) for c in DEFAULT_CONSTRAINTS], min_length=1
    )
    multi_turn_fraction: float = Field(
        0.3, ge=0, le=1, description="Share of prompts whose constraints come in a later turn."
    )

    @field_validator("constraint_pool")
    @classmethod
    def _buildable(cls, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, spec in enumerate(pool):
            try:
                cons.build(spec)
            except cons.ConstraintError as exc:
                raise ValueError(f"constraint_pool[{i}]: {exc}") from None
        return pool


def _base_tasks(gen: Generator, tables: Tables, cfg: InstructionFollowingConfig):
    if cfg.use_prompts and "prompts" in tables:
        rows = tables["prompts"].filter(pl.col("messages").list.len() == 1)
        tasks = [(r["messages"][0]["content"], r["prompt_id"]) for r in rows.iter_rows(named=True)]
    else:
        found = gen.ask_lists("tasks", [{"topic": t} for t in cfg.topics], cfg.n_tasks, "tasks")
        tasks = [(task, None) for tasks_ in found for task in tasks_]
    return tasks[: cfg.max_base] if cfg.max_base else tasks


@stage("synth.instruction_following", InstructionFollowingConfig)
def instruction_following(ctx: StageContext, tables: Tables, cfg: InstructionFollowingConfig):
    """Prompts with verifiable constraints (stored as JSON); some apply to a later turn."""
    gen = Generator(ctx, cfg, "instruction_following")
    pool = [cons.build(spec) for spec in cfg.constraint_pool]
    plans = []
    for task, parent in _base_tasks(gen, tables, cfg):
        rng = random.Random(stable_int(ctx.seed, ctx.name, task))
        chosen = draw_constraints(pool, cfg.constraints_per_prompt, rng)
        plans.append((task, parent, chosen, rng.random() < cfg.multi_turn_fraction))
    later = [p for p in plans if p[3]]
    answers = gen.singles(
        [gen.request([{"role": "user", "content": task}]) for task, *_ in later],
        "answer",
        "first-turn answers",
    )
    answer_of = {id(p): a for p, a in zip(later, answers, strict=True)}
    follow = gen.templates["follow_up"]
    items = []
    for plan in plans:
        task, parent, chosen, multi = plan
        text = cons.render_instructions(chosen)
        meta = {"base_prompt_id": parent, "constraints": json.loads(cons.dumps(chosen))}
        if not multi:
            items.append(([{"role": "user", "content": f"{task} {text}"}], {**meta, "turn": 1}))
        elif answer_of[id(plan)]:
            messages = [
                {"role": "user", "content": task},
                {"role": "assistant", "content": answer_of[id(plan)]},
                *follow.messages(instructions=text),
            ]
            items.append(([m for m in messages if m["role"] != "system"], {**meta, "turn": 2}))
    frame = prompt_frame(ctx, items, gen.rejects)
    frame = frame.with_columns(
        pl.col("meta")
        .map_elements(lambda m: json.dumps(json.loads(m)["constraints"]), return_dtype=pl.String)
        .alias("constraints")
    )
    ctx.info["counts"] = {
        "base_tasks": len(plans),
        "multi_turn": int(frame["meta"].str.contains('"turn": 2').sum()),
        "prompts": frame.height,
    }
    ctx.info["constraint_ids"] = dict(sorted(_count_ids(frame).items()))
    gen.finish()
    return {"prompts": append_prompts(tables, frame)}


def _count_ids(frame: pl.DataFrame) -> dict[str, int]:
    counts: dict[str, int] = {}
    for text in frame["constraints"]:
        for spec in json.loads(text):
            counts[spec["id"]] = counts.get(spec["id"], 0) + 1
    return counts


# --- two-turn and dialogue ----------------------------------------------------------------

PERSONAS = [
    "You are a busy parent who writes short, direct messages.",
    "You are a university student who is curious and asks for examples.",
    "You are a retired engineer who likes precise details and numbers.",
    "You are a small-business owner who wants practical, actionable advice.",
    "You are a skeptical reader who asks for justification of claims.",
]


class ConversationConfig(SynthConfig):
    use_prompts: bool = Field(
        True, description="Use the single-turn rows of the `prompts` table as first turns."
    )
    seeds: list[str] = Field(default_factory=list, description="Given first user turns.")
    topics: list[str] = Field(
        default_factory=list, description="Topics for generated first turns (empty: generate)."
    )
    n_topics: int = Field(3, ge=1, description="Generated first turns when nothing is given.")
    max_conversations: int | None = Field(None, ge=1)
    personas: list[str] = Field(default_factory=lambda: list(PERSONAS), min_length=1)
    assistant_system: str | None = Field(
        None, description="System prompt for the simulated assistant."
    )


class TwoTurnConfig(ConversationConfig):
    pass


class DialogueConfig(ConversationConfig):
    n_turns: int = Field(3, ge=2, le=10, description="User turns per conversation.")


def _first_turns(gen: Generator, tables: Tables, cfg: ConversationConfig, rng_seed: int):
    firsts: list[tuple[str, str | None]] = []
    if cfg.use_prompts and "prompts" in tables:
        rows = tables["prompts"].filter(pl.col("messages").list.len() == 1)
        firsts += [
            (r["messages"][0]["content"], r["prompt_id"]) for r in rows.iter_rows(named=True)
        ]
    firsts += [(s, None) for s in cfg.seeds]
    if not firsts:
        topics = _topics(gen, cfg.topics, cfg.n_topics)
        personas = [_persona(cfg, rng_seed, t) for t in topics]
        opened = gen.ask_singles(
            "opening",
            [{"topic": t, "persona": p} for t, p in zip(topics, personas, strict=True)],
            "opening turns",
        )
        firsts += [(remove_politeness(o), None) for o in opened if o]
    firsts = [f for f in firsts if f[0].strip()]
    return firsts[: cfg.max_conversations] if cfg.max_conversations else firsts


def _persona(cfg: ConversationConfig, seed: int, key: str) -> str:
    return cfg.personas[stable_int(seed, "persona", key) % len(cfg.personas)]


def converse(gen: Generator, cfg: ConversationConfig, starts, rounds: int, seed: int):
    """Extend each conversation by `rounds` (assistant answer, simulated user turn) pairs.
    Returns [(messages or None, persona)]; None when a turn came out empty."""
    convs: list[list[Message] | None] = [[{"role": "user", "content": s}] for s, _ in starts]
    personas = [_persona(cfg, seed, s) for s, _ in starts]
    system = [{"role": "system", "content": cfg.assistant_system}] if cfg.assistant_system else []
    for r in range(rounds):
        alive = [i for i, c in enumerate(convs) if c is not None]
        answers = gen.singles(
            [gen.request([*system, *convs[i]]) for i in alive], "assistant", f"answers {r + 1}"
        )
        for i, answer in zip(alive, answers, strict=True):
            convs[i] = [*convs[i], {"role": "assistant", "content": answer}] if answer else None
        alive = [i for i, c in enumerate(convs) if c is not None]
        turns = gen.ask_singles(
            "user_turn",
            [{"persona": personas[i], "transcript": transcript(convs[i])} for i in alive],
            f"user turns {r + 1}",
        )
        for i, turn in zip(alive, turns, strict=True):
            cleaned = remove_politeness(turn)
            if not cleaned:
                if turn:
                    gen.rejects.add(
                        "user_turn", i, "only politeness phrases in the user turn", turn
                    )
                convs[i] = None
                continue
            convs[i] = [*convs[i], {"role": "user", "content": cleaned}]
    return list(zip(convs, personas, strict=True))


def _conversation_stage(ctx, tables, cfg: ConversationConfig, group: str, rounds: int):
    gen = Generator(ctx, cfg, group)
    starts = _first_turns(gen, tables, cfg, ctx.seed)
    done = converse(gen, cfg, starts, rounds, ctx.seed)
    items = [
        (messages, {"first_prompt_id": parent, "persona": persona, "user_turns": rounds + 1})
        for (messages, persona), (_, parent) in zip(done, starts, strict=True)
        if messages is not None
    ]
    frame = prompt_frame(ctx, items, gen.rejects)
    ctx.info["counts"] = {"started": len(starts), "prompts": frame.height}
    gen.finish()
    return {"prompts": append_prompts(tables, frame)}


@stage("synth.two_turn", TwoTurnConfig)
def two_turn(ctx: StageContext, tables: Tables, cfg: TwoTurnConfig):
    """Two-turn prompts: first turn -> assistant answer -> simulated next user turn."""
    return _conversation_stage(ctx, tables, cfg, "two_turn", 1)


@stage("synth.dialogue", DialogueConfig)
def dialogue(ctx: StageContext, tables: Tables, cfg: DialogueConfig):
    """N-turn conversations by role-play with user personas, politeness removed from users."""
    return _conversation_stage(ctx, tables, cfg, "dialogue", cfg.n_turns - 1)


# --- responses ----------------------------------------------------------------------------


class ModelSpec(BaseModel):
    """One model that answers, with its own sampling settings."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Label in the `model` column (default: model).")
    llm: LLMConfig = Field(default_factory=LLMConfig)
    k: int = Field(2, ge=1, description="Responses per prompt.")
    temperature: float = Field(0.8, ge=0)
    top_p: float | None = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    system: str | None = None


class ResponsesConfig(StageConfig):
    models: list[ModelSpec] = Field(default_factory=lambda: [ModelSpec()], min_length=1)
    max_prompts: int | None = Field(None, ge=1, description="Answer only the first N prompts.")

    @model_validator(mode="after")
    def _distinct_labels(self) -> ResponsesConfig:
        labels = [m.name or m.llm.model or m.llm.backend for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models need distinct names; got {labels}")
        return self


RESPONSE_COLUMNS = {
    "response_id": pl.String,
    "response": pl.String,
    "model": pl.String,
    "sample": pl.Int64,
}


def _responses_needs(cfg: ResponsesConfig) -> Needs:
    return llm_needs(*(m.llm for m in cfg.models))


# `max_prompts` takes the first N prompts of the whole table: not row-wise.
@stage(
    "synth.responses",
    ResponsesConfig,
    shardable=lambda cfg: cfg.max_prompts is None,
    needs=_responses_needs,
)
def responses(ctx: StageContext, tables: Tables, cfg: ResponsesConfig):
    """k responses per prompt from one or several models, each with its own sampling."""
    if "prompts" not in tables:
        raise PipelineError(f"{ctx.name}: needs a `prompts` table (e.g. from synth.seed)")
    prompts = tables["prompts"]
    if cfg.max_prompts:
        prompts = prompts.head(cfg.max_prompts)
    parts = []
    for spec in cfg.models:
        parts.append(_answer_with(ctx, prompts, spec))
    frame = pl.concat(parts, how="diagonal_relaxed")
    if "responses" in tables:
        frame = pl.concat([tables["responses"], frame], how="diagonal_relaxed")
    ctx.info["counts"] = {"prompts": prompts.height, "responses": frame.height}
    return {"responses": frame}


def _answer_with(ctx: StageContext, prompts: pl.DataFrame, spec: ModelSpec) -> pl.DataFrame:
    sampling = SynthConfig(
        llm=spec.llm, temperature=spec.temperature, top_p=spec.top_p, max_tokens=spec.max_tokens
    )
    gen = Generator(ctx, sampling)
    label = spec.name or gen.client.model_name or spec.llm.backend
    system = [{"role": "system", "content": spec.system}] if spec.system else []
    requests = [gen.request([*system, *msgs], n=spec.k) for msgs in prompts["messages"].to_list()]
    rows: list[dict[str, Any]] = []
    for i, done in enumerate(gen.run(requests, f"responses {label}")):
        pid = prompts["prompt_id"][i]
        if not done.ok:
            gen.rejects.add(pid, i, f"{label}: LLM error: {done.error}", done.text or None)
            continue
        for s, text in enumerate(done.texts[: spec.k]):
            if not text.strip():
                gen.rejects.add(pid, i, f"{label}: empty response (sample {s})", text)
                continue
            rows.append(
                {
                    "_row": i,
                    "response_id": short_hash(pid, label, s),
                    "response": text.strip(),
                    "model": label,
                    "sample": s,
                }
            )
    gen.finish()
    answered = pl.DataFrame(rows, schema={"_row": pl.Int64, **RESPONSE_COLUMNS})
    indexed = prompts.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    return indexed.join(answered, on="_row", how="inner").sort("_row", "sample").drop("_row")


# --- preference pairs ---------------------------------------------------------------------


class PreferencePairsConfig(StageConfig):
    score_column: str = Field("reward", description="Numeric score a judge stage wrote.")
    rule: Literal["best_worst", "best_second", "random_pair"] = Field(
        "best_worst",
        description="best_worst: best vs worst; best_second: the two best (hardest pairs); "
        "random_pair: two random responses, the better one chosen.",
    )
    higher_is_better: bool = True
    strength_thresholds: list[float] = Field(
        default_factory=lambda: [0.5, 1.5, 3.0],
        description="Score margins for strength 1, 2, 3 (below the first: a tie, 0).",
    )
    min_margin: float = Field(0.0, ge=0, description="Drop pairs with a smaller margin.")

    @field_validator("strength_thresholds")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not 1 <= len(value) <= 3 or any(t <= 0 for t in value) or value != sorted(set(value)):
            raise ValueError("expected 1 to 3 positive, strictly increasing thresholds")
        return value


@stage("synth.preference_pairs", PreferencePairsConfig, shardable=True)
def preference_pairs(ctx: StageContext, tables: Tables, cfg: PreferencePairsConfig):
    """Chosen/rejected pairs from judged responses as a HelpSteer2 `preference` table."""
    from synth.preference import pick_pairs, to_preference

    if "responses" not in tables:
        raise PipelineError(f"{ctx.name}: needs a `responses` table (from synth.responses)")
    table = tables["responses"]
    col = cfg.score_column
    if col not in table.columns:
        raise PipelineError(
            f"{ctx.name}: the `responses` table has no {col!r} column (columns: "
            f"{', '.join(table.columns)}); run a judge stage first or set score_column"
        )
    if not table.schema[col].is_numeric():
        raise PipelineError(f"{ctx.name}: column {col!r} is {table.schema[col]}, not numeric")
    rejects = Rejects()
    has_score = pl.col(col).is_not_null() & pl.col(col).cast(pl.Float64).is_not_nan()
    scored = table.filter(has_score)
    # Same source and record id as the judge's own rejection of the row, so the run keeps
    # one rejection per response: the judge's reason when it rejected it first.
    unscored = table.with_row_index("_line").filter(~has_score)
    for line, rid in unscored.select("_line", "response_id").iter_rows():
        record = json.dumps({"id": rid})
        rejects.add("table responses", line, f"response {rid}: no {col} score", record)
    if not cfg.higher_is_better:
        scored = scored.with_columns(-pl.col(col))
    pairs = pick_pairs(scored, col, cfg.rule, ctx.seed)
    few = pairs.filter(pl.col("n_scored") < 2)
    for pid in few["prompt_id"]:
        rejects.add("responses", -1, f"prompt {pid}: fewer than 2 scored responses")
    pairs = pairs.filter(pl.col("n_scored") >= 2)
    small = pairs.filter((pl.col("chosen_score") - pl.col("rejected_score")) < cfg.min_margin)
    for pid in small["prompt_id"]:
        rejects.add("responses", -1, f"prompt {pid}: score margin below {cfg.min_margin}")
    pairs = pairs.join(small.select("prompt_id"), on="prompt_id", how="anti")
    frame = to_preference(pairs, cfg.strength_thresholds, col, cfg.rule, ctx.seed)
    if not cfg.higher_is_better:
        frame = frame.with_columns(-pl.col("chosen_score"), -pl.col("rejected_score"))
    rejects.flush(ctx)
    ctx.info["pairs"] = frame.height
    # One string, not numbers: partitions' infos add numbers up (helpsteer.partition).
    ctx.info["pairing"] = (
        f"rule {cfg.rule} on `{col}` ({'higher' if cfg.higher_is_better else 'lower'} is "
        f"better), strength thresholds {cfg.strength_thresholds}, min margin {cfg.min_margin}"
    )
    ctx.info["strengths"] = {
        str(k): v
        for k, v in frame.group_by("preference_strength")
        .len()
        .sort("preference_strength")
        .iter_rows()
    }
    return {"preference": frame}


# --- filter -------------------------------------------------------------------------------


class FilterConfig(StageConfig):
    table: str = Field("prompts", description="The table to filter (prompts, responses, ...).")
    column: str | None = Field(
        None, description="Text column; default `response` for responses, else `prompt`."
    )
    group_by: str | None = Field(
        None,
        description="Deduplicate within groups of this column; default `prompt_id` for "
        "responses (two samples of one prompt), none for other tables.",
    )
    exact_dedupe: bool = True
    near_dedupe: bool = True
    near_threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard of shingles.")
    num_perm: int = Field(128, ge=16, le=1024)
    shingle: int = Field(5, ge=1, description="Characters per shingle.")
    min_words: int | None = Field(1, ge=0)
    max_words: int | None = Field(None, ge=1)
    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=1)
    refusal: bool | None = Field(None, description="Drop refusals; default on for responses.")
    refusal_phrases: list[str] | None = Field(None, description="Replace the built-in phrases.")
    language: str | None = Field(
        "en",
        validation_alias=AliasChoices("language", "stopword_language"),
        description="Drop rows that py3langid confidently identifies as another language "
        "(ISO 639-1 code; `stopword_language` is the old name). None: off.",
    )
    language_min_confidence: float = Field(
        0.9, ge=0, le=1, description="Drop only when py3langid's probability is at least this."
    )
    language_min_letters: int = Field(
        20, ge=0, description="Rows with fewer letters are not judged (too short to tell)."
    )


def _length_reason(text: str, cfg: FilterConfig) -> str | None:
    n_words, n_chars = len(text.split()), len(text)
    if cfg.min_words is not None and n_words < cfg.min_words:
        return f"length: {n_words} words < min_words {cfg.min_words}"
    if cfg.max_words is not None and n_words > cfg.max_words:
        return f"length: {n_words} words > max_words {cfg.max_words}"
    if cfg.min_chars is not None and n_chars < cfg.min_chars:
        return f"length: {n_chars} characters < min_chars {cfg.min_chars}"
    if cfg.max_chars is not None and n_chars > cfg.max_chars:
        return f"length: {n_chars} characters > max_chars {cfg.max_chars}"
    return None


def _language_reason(text: str, cfg: FilterConfig) -> str | None:
    from synth.filters import other_language

    found = other_language(
        text, cfg.language, cfg.language_min_confidence, cfg.language_min_letters
    )
    if found is None:
        return None
    language, probability = found
    return f"language: py3langid says {language!r} (p={probability:.2f}), expected {cfg.language!r}"


def filter_reasons(texts: list[str], groups: list | None, cfg: FilterConfig, is_responses: bool):
    """One reason per row (None = kept), checks in order: length, refusal, language,
    exact duplicate, near duplicate (dedupe only among rows that passed the others)."""
    from synth.filters import (
        REFUSAL_PHRASES,
        near_duplicates,
        normalise,
        refusal_phrase,
    )

    phrases = [p.casefold() for p in (cfg.refusal_phrases or REFUSAL_PHRASES)]
    check_refusal = is_responses if cfg.refusal is None else cfg.refusal
    reasons: list[str | None] = []
    for text in texts:
        reason = _length_reason(text, cfg)
        if reason is None and check_refusal and (found := refusal_phrase(text, phrases)):
            reason = f"refusal: contains {found!r}"
        if reason is None and cfg.language:
            reason = _language_reason(text, cfg)
        reasons.append(reason)
    alive = [i for i, r in enumerate(reasons) if r is None]
    if cfg.exact_dedupe:
        first: dict[tuple, int] = {}
        for i in alive:
            key = (groups[i] if groups else None, normalise(texts[i]))
            if key in first:
                reasons[i] = f"exact duplicate of row {first[key]}"
            else:
                first[key] = i
        alive = [i for i in alive if reasons[i] is None]
    if cfg.near_dedupe and alive:
        dups = near_duplicates(
            [texts[i] for i in alive],
            [groups[i] for i in alive] if groups else None,
            cfg.near_threshold,
            cfg.num_perm,
            cfg.shingle,
        )
        for j, (k, score) in dups.items():
            reasons[alive[j]] = f"near duplicate of row {alive[k]} (estimated Jaccard {score:.2f})"
    return reasons


@stage("synth.filter", FilterConfig)
def filter_(ctx: StageContext, tables: Tables, cfg: FilterConfig):
    """Quality filters: length, refusals, language (py3langid), exact and near duplicates
    (rensa MinHash + LSH). Dropped rows go to `rejected` with the reason."""
    if cfg.table not in tables:
        raise PipelineError(
            f"{ctx.name}: no table {cfg.table!r}; have {', '.join(tables) or 'none'}"
        )
    frame = tables[cfg.table]
    is_responses = "response" in frame.columns and cfg.table == "responses"
    column = cfg.column or ("response" if is_responses else "prompt")
    if column not in frame.columns:
        raise PipelineError(f"{ctx.name}: table {cfg.table!r} has no column {column!r}")
    group_col = cfg.group_by or ("prompt_id" if is_responses else None)
    if group_col and group_col not in frame.columns:
        raise PipelineError(f"{ctx.name}: table {cfg.table!r} has no column {group_col!r}")
    texts = frame[column].fill_null("").to_list()
    groups = frame[group_col].to_list() if group_col else None
    with ctx.reporter.task(f"{ctx.name}: filter {cfg.table}", total=1) as bar:
        reasons = filter_reasons(texts, groups, cfg, is_responses)
        bar.advance()
    marked = frame.with_columns(pl.Series("_reason", reasons, dtype=pl.String))
    dropped = marked.with_row_index("line").filter(pl.col("_reason").is_not_null())
    id_col = next((c for c in ("response_id", "prompt_id", "pair_id") if c in frame.columns), None)
    record = pl.struct([c for c in (id_col, column) if c]).struct.json_encode()
    ctx.reject(
        dropped.select(
            pl.lit(cfg.table).alias("source"),
            pl.col("line").cast(pl.Int64),
            pl.col("_reason").alias("reason"),
            record.alias("record"),
        )
    )
    kinds: dict[str, int] = {}
    for r in dropped["_reason"]:
        kind = "_".join(r.split(" of row")[0].split(":")[0].split(" (")[0].split())
        kinds[kind] = kinds.get(kind, 0) + 1
    ctx.info.update(rows=frame.height, kept=frame.height - dropped.height, dropped=kinds)
    return {cfg.table: marked.filter(pl.col("_reason").is_null()).drop("_reason")}


# --- save ---------------------------------------------------------------------------------


class SaveConfig(StageConfig):
    tables: list[str] = Field(default_factory=lambda: ["prompts", "responses", "preference"])
    folder: str = Field("synth", description="Sub-folder of the output folder.")
    formats: list[Literal["jsonl", "parquet"]] = Field(default_factory=lambda: ["jsonl"])


@stage("synth.save", SaveConfig, cacheable=False)
def save(ctx: StageContext, tables: Tables, cfg: SaveConfig):
    """Write the synth tables (those that exist) into OUT/<folder>/ as JSONL and/or Parquet."""
    from synth.io import write_table

    written = {}
    for name in cfg.tables:
        if name in tables:
            for fmt in cfg.formats:
                path = Path(ctx.out_dir) / cfg.folder / f"{name}.{fmt}"
                write_table(tables[name], path)
                written[str(path)] = tables[name].height
    ctx.info["files"] = written
    return {}
