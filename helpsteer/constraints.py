"""Verifiable instruction-following constraints (IFEval-style).

Each constraint type has a stable id (``"length:max_words"``), typed parameters, an
instruction sentence to append to a prompt, and a programmatic checker. ``synth`` uses
them to build instruction-following prompts; ``judge`` uses the checkers as ground truth.

A constraint list is (de)serialised as JSON: ``[{"id": "length:max_words", "params":
{"n": 50}}, ...]``.

Where IFEval (Zhou et al. 2023, as shipped in ``lm_eval.tasks.ifeval.instructions``) has the
same instruction, our checker implements IFEval's rule (its word count, its paragraph
split, its substring keyword match, ...) so a verdict here is IFEval's verdict; ``ifeval()``
names the IFEval instruction(s) and arguments. tests/helpsteer/test_ifeval_agreement.py
checks this on a generated corpus of 2,000+ responses per type against IFEval's own code.
Language (``language:response_language`` and the "in English" part of the case
constraints) uses py3langid instead of IFEval's langdetect; see ``identify_language``.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Relation = Literal["at least", "at most", "exactly"]


class CheckResult(NamedTuple):
    ok: bool
    reason: str


class ConstraintResult(NamedTuple):
    id: str
    ok: bool
    reason: str


class ConstraintError(ValueError):
    """A constraint spec that cannot be used (unknown id, bad parameters, bad JSON)."""


REGISTRY: dict[str, type[Constraint]] = {}


class Constraint(BaseModel):
    """Base class: subclasses set ``id`` and implement ``instruction`` and ``check``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.id:
            if cls.id in REGISTRY:
                raise ValueError(f"constraint id {cls.id!r} is registered twice")
            REGISTRY[cls.id] = cls

    def instruction(self) -> str:
        raise NotImplementedError

    def check(self, response: str) -> CheckResult:
        raise NotImplementedError

    def ifeval(self) -> list[tuple[str, dict[str, Any]]]:
        """The IFEval instruction(s) whose conjunction is this constraint: (instruction id,
        `build_description` kwargs); empty when IFEval has no counterpart."""
        return []

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "params": self.model_dump(mode="json")}


# ---------------------------------------------------------------- text helpers

_WORD = re.compile(r"\w+")
_CAPITAL_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")
_DIVIDER = re.compile(r"\s?\*\*\*\s?")
_STAR_BULLET = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_DASH_BULLET = re.compile(r"^\s*-.*$", re.MULTILINE)


def words(text: str) -> list[str]:
    r"""Words as IFEval counts them (nltk's RegexpTokenizer(r"\w+")): "it's" is two."""
    return _WORD.findall(text)


def sentences(text: str) -> list[str]:
    """Sentences split after ``.``, ``!`` or ``?`` followed by space (no abbreviation list)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if words(s)]


def paragraphs(text: str) -> list[str] | None:
    """Paragraphs separated by the ``***`` divider (IFEval's split): an empty piece at the
    start or end is dropped; None when an empty piece sits between two dividers."""
    pieces = _DIVIDER.split(text)
    for i, piece in enumerate(pieces):
        if not piece.strip() and 0 < i < len(pieces) - 1:
            return None
    return [p for p in pieces if p.strip()]


def ifeval_relation(relation: Relation, n: int) -> list[tuple[str, int]]:
    """Our relation as IFEval's ("less than", "at least") pairs, all of which must hold."""
    if relation == "at least":
        return [("at least", n)]
    if relation == "at most":
        return [("less than", n + 1)]
    return [("at least", n), ("less than", n + 1)]


def compare(count: int, relation: Relation, n: int) -> bool:
    if relation == "at least":
        return count >= n
    if relation == "at most":
        return count <= n
    return count == n


def _counted(what: str, count: int, relation: Relation, n: int) -> CheckResult:
    ok = compare(count, relation, n)
    verdict = "meets" if ok else "violates"
    return CheckResult(ok, f"{count} {what}, {verdict} '{relation} {n}'")


def _whole_word(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(keyword)}\b", re.IGNORECASE)


def _substring(keyword: str) -> re.Pattern[str]:
    return re.compile(re.escape(keyword), re.IGNORECASE)


# ---------------------------------------------------------------- length


class MaxWords(Constraint):
    id: ClassVar[str] = "length:max_words"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return f"Answer in at most {self.n} words."

    def check(self, response: str) -> CheckResult:
        return _counted("words", len(words(response)), "at most", self.n)

    def ifeval(self):
        kwargs = {"num_words": self.n + 1, "relation": "less than"}
        return [("length_constraints:number_words", kwargs)]


class MinWords(Constraint):
    id: ClassVar[str] = "length:min_words"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return f"Answer in at least {self.n} words."

    def check(self, response: str) -> CheckResult:
        return _counted("words", len(words(response)), "at least", self.n)

    def ifeval(self):
        kwargs = {"num_words": self.n, "relation": "at least"}
        return [("length_constraints:number_words", kwargs)]


class SentenceCount(Constraint):
    id: ClassVar[str] = "length:sentences"
    n: int = Field(ge=1)
    relation: Relation = "at most"

    def instruction(self) -> str:
        return f"Your response must contain {self.relation} {self.n} sentences."

    def check(self, response: str) -> CheckResult:
        return _counted("sentences", len(sentences(response)), self.relation, self.n)

    def ifeval(self):
        # IFEval counts with nltk's punkt model; our split is a regex (see sentences()).
        return [
            ("length_constraints:number_sentences", {"num_sentences": n, "relation": rel})
            for rel, n in ifeval_relation(self.relation, self.n)
        ]


class ParagraphCount(Constraint):
    id: ClassVar[str] = "length:paragraphs"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"Write exactly {self.n} paragraphs, separated from each other by the "
            "markdown divider ***."
        )

    def check(self, response: str) -> CheckResult:
        found = paragraphs(response)
        if found is None:
            return CheckResult(False, "an empty paragraph between two *** dividers")
        return _counted("paragraphs", len(found), "exactly", self.n)

    def ifeval(self):
        return [("length_constraints:number_paragraphs", {"num_paragraphs": self.n})]


# ---------------------------------------------------------------- format


class JsonFormat(Constraint):
    id: ClassVar[str] = "format:json"

    def instruction(self) -> str:
        return "Wrap your entire output in JSON format; a markdown code fence is allowed."

    def check(self, response: str) -> CheckResult:
        text = response.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            text = text.removeprefix(fence)
        text = text.removesuffix("```").strip()
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return CheckResult(False, f"not valid JSON: {exc.msg} at line {exc.lineno}")
        return CheckResult(True, "the whole response parses as JSON")

    def ifeval(self):
        return [("detectable_format:json_format", {})]


class BulletCount(Constraint):
    id: ClassVar[str] = "format:bullets"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"Your answer must contain exactly {self.n} bullet points, using markdown "
            "bullets such as:\n* This is point 1.\n* This is point 2."
        )

    def check(self, response: str) -> CheckResult:
        # IFEval's rule: lines starting with "*" (not "**") or with "-".
        count = len(_STAR_BULLET.findall(response)) + len(_DASH_BULLET.findall(response))
        return _counted("bullet points", count, "exactly", self.n)

    def ifeval(self):
        return [("detectable_format:number_bullet_lists", {"num_bullets": self.n})]


class Title(Constraint):
    id: ClassVar[str] = "format:title"

    def instruction(self) -> str:
        return "Give your answer a title wrapped in double angular brackets, like <<my title>>."

    def check(self, response: str) -> CheckResult:
        for title in re.findall(r"<<[^\n]+>>", response):
            if title.lstrip("<").rstrip(">").strip():
                return CheckResult(True, f"title {title} found")
        return CheckResult(False, "no non-empty <<title>> found")

    def ifeval(self):
        return [("detectable_format:title", {})]


class Highlights(Constraint):
    id: ClassVar[str] = "format:highlights"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"Highlight at least {self.n} sections of your answer with markdown, "
            "i.e. *highlighted section*."
        )

    def check(self, response: str) -> CheckResult:
        single = re.findall(r"\*[^\n\*]*\*", response)
        double = re.findall(r"\*\*[^\n\*]*\*\*", response)
        count = sum(1 for h in single if h.strip("*").strip())
        count += sum(1 for h in double if h.removeprefix("**").removesuffix("**").strip())
        return _counted("highlighted sections", count, "at least", self.n)

    def ifeval(self):
        return [("detectable_format:number_highlighted_sections", {"num_highlights": self.n})]


class Sections(Constraint):
    id: ClassVar[str] = "format:sections"
    n: int = Field(ge=1)
    splitter: str = Field(default="SECTION", min_length=1)

    def instruction(self) -> str:
        return (
            f"Your response must have {self.n} sections. Mark the beginning of each section "
            f"with {self.splitter} X, such as:\n{self.splitter} 1\n[content of section 1]\n"
            f"{self.splitter} 2\n[content of section 2]"
        )

    def check(self, response: str) -> CheckResult:
        # IFEval's rule: the pieces after splitting on "SPLITTER <number>", at least n.
        splitter = self.splitter.strip()
        pattern = re.compile(rf"\s?{re.escape(splitter)}\s?\d+\s?")
        count = len(pattern.split(response)) - 1
        return _counted(f"{splitter} headers", count, "at least", self.n)

    def ifeval(self):
        kwargs = {"section_spliter": self.splitter, "num_sections": self.n}
        return [("detectable_format:multiple_sections", kwargs)]


class QuotationWrap(Constraint):
    id: ClassVar[str] = "format:quotation"

    def instruction(self) -> str:
        return "Wrap your entire response with double quotation marks."

    def check(self, response: str) -> CheckResult:
        text = response.strip()
        ok = len(text) > 1 and text[0] == '"' and text[-1] == '"'
        return CheckResult(ok, "wrapped in double quotes" if ok else "not wrapped in double quotes")

    def ifeval(self):
        return [("startend:quotation", {})]


# ---------------------------------------------------------------- keywords


class KeywordsInclude(Constraint):
    id: ClassVar[str] = "keywords:include"
    keywords: list[str] = Field(min_length=1)

    def instruction(self) -> str:
        return f"Include the keywords {', '.join(repr(k) for k in self.keywords)} in the response."

    def check(self, response: str) -> CheckResult:
        # IFEval's rule: a case-insensitive substring ("river" is in "riverbank").
        missing = [k for k in self.keywords if not _substring(k).search(response)]
        if missing:
            return CheckResult(False, f"missing keywords: {', '.join(missing)}")
        return CheckResult(True, "all keywords present")

    def ifeval(self):
        return [("keywords:existence", {"keywords": list(self.keywords)})]


class KeywordsExclude(Constraint):
    id: ClassVar[str] = "keywords:exclude"
    forbidden: list[str] = Field(min_length=1)

    def instruction(self) -> str:
        listed = ", ".join(repr(k) for k in self.forbidden)
        return f"Do not include the words {listed} in the response."

    def check(self, response: str) -> CheckResult:
        found = [k for k in self.forbidden if _whole_word(k).search(response)]
        if found:
            return CheckResult(False, f"forbidden words used: {', '.join(found)}")
        return CheckResult(True, "no forbidden words")

    def ifeval(self):
        return [("keywords:forbidden_words", {"forbidden_words": list(self.forbidden)})]


class KeywordFrequency(Constraint):
    id: ClassVar[str] = "keywords:frequency"
    keyword: str = Field(min_length=1)
    n: int = Field(ge=0)
    relation: Relation = "at least"

    def instruction(self) -> str:
        how_often = f"{self.relation} {self.n} times"
        return f"In your response, the word {self.keyword!r} should appear {how_often}."

    def check(self, response: str) -> CheckResult:
        count = len(_substring(self.keyword.strip()).findall(response))
        return _counted(f"occurrences of {self.keyword!r}", count, self.relation, self.n)

    def ifeval(self):
        return [
            ("keywords:frequency", {"keyword": self.keyword, "frequency": n, "relation": rel})
            for rel, n in ifeval_relation(self.relation, self.n)
        ]


class LetterFrequency(Constraint):
    id: ClassVar[str] = "keywords:letter_frequency"
    letter: str = Field(min_length=1, max_length=1, pattern=r"^[A-Za-z]$")
    n: int = Field(ge=0)
    relation: Relation = "at least"

    def instruction(self) -> str:
        how_often = f"{self.relation} {self.n} times"
        return f"In your response, the letter {self.letter} should appear {how_often}."

    def check(self, response: str) -> CheckResult:
        count = response.lower().count(self.letter.lower())
        return _counted(f"letters {self.letter!r}", count, self.relation, self.n)

    def ifeval(self):
        return [
            (
                "keywords:letter_frequency",
                {"letter": self.letter, "let_frequency": n, "let_relation": rel},
            )
            for rel, n in ifeval_relation(self.relation, self.n)
        ]


# ---------------------------------------------------------------- case and punctuation


class Lowercase(Constraint):
    id: ClassVar[str] = "case:lowercase"

    def instruction(self) -> str:
        return "Your entire response should be in English, and in all lowercase letters."

    def check(self, response: str) -> CheckResult:
        upper = [c for c in response if c.isupper()]
        if upper:
            return CheckResult(False, f"{len(upper)} uppercase letters, first {upper[0]!r}")
        if not response.islower():
            return CheckResult(False, "no lowercase letters at all")
        return _english(response, "all lowercase")

    def ifeval(self):
        return [("change_case:english_lowercase", {})]


class Uppercase(Constraint):
    id: ClassVar[str] = "case:uppercase"

    def instruction(self) -> str:
        return "Your entire response should be in English and in all capital letters."

    def check(self, response: str) -> CheckResult:
        lower = [c for c in response if c.islower()]
        if lower:
            return CheckResult(False, f"{len(lower)} lowercase letters, first {lower[0]!r}")
        if not response.isupper():
            return CheckResult(False, "no uppercase letters at all")
        return _english(response, "all capitals")

    def ifeval(self):
        return [("change_case:english_capital", {})]


class CapitalWords(Constraint):
    id: ClassVar[str] = "case:capital_words"
    n: int = Field(ge=0)
    relation: Relation = "at least"

    def instruction(self) -> str:
        return f"Words in all capital letters should appear {self.relation} {self.n} times."

    def check(self, response: str) -> CheckResult:
        # IFEval uses nltk.word_tokenize (punkt data); hyphenated words count as one here too.
        count = sum(1 for w in _CAPITAL_WORD.findall(response) if w.isupper())
        return _counted("all-capital words", count, self.relation, self.n)

    def ifeval(self):
        return [
            (
                "change_case:capital_word_frequency",
                {"capital_frequency": n, "capital_relation": rel},
            )
            for rel, n in ifeval_relation(self.relation, self.n)
        ]


class NoCommas(Constraint):
    id: ClassVar[str] = "punctuation:no_commas"

    def instruction(self) -> str:
        return "In your entire response, refrain from the use of any commas."

    def check(self, response: str) -> CheckResult:
        # IFEval counts the ASCII comma only (not the full-width one).
        count = response.count(",")
        return CheckResult(count == 0, f"{count} commas")

    def ifeval(self):
        return [("punctuation:no_comma", {})]


# ---------------------------------------------------------------- content


class StartPhrase(Constraint):
    id: ClassVar[str] = "start:phrase"
    phrase: str = Field(min_length=1)

    def instruction(self) -> str:
        return f"Begin your response with the exact phrase {self.phrase!r}."

    def check(self, response: str) -> CheckResult:
        ok = response.strip().lower().startswith(self.phrase.strip().lower())
        return CheckResult(ok, "starts with the phrase" if ok else "does not start with the phrase")

    def ifeval(self):
        # IFEval's repeat-the-prompt check is exactly "starts with this text".
        return [("combination:repeat_prompt", {"prompt_to_repeat": self.phrase})]


class EndPhrase(Constraint):
    id: ClassVar[str] = "end:phrase"
    phrase: str = Field(min_length=1)

    def instruction(self) -> str:
        return (
            f"Finish your response with the exact phrase {self.phrase!r}. "
            "No other words should follow it."
        )

    def check(self, response: str) -> CheckResult:
        ok = response.strip().strip('"').lower().endswith(self.phrase.strip().lower())
        return CheckResult(ok, "ends with the phrase" if ok else "does not end with the phrase")

    def ifeval(self):
        return [("startend:end_checker", {"end_phrase": self.phrase})]


class Postscript(Constraint):
    id: ClassVar[str] = "content:postscript"
    marker: str = Field(default="P.S.", min_length=1)

    def instruction(self) -> str:
        return f"At the end of your response, add a postscript starting with {self.marker}"

    def check(self, response: str) -> CheckResult:
        # IFEval's rule: the marker anywhere (case-insensitive), "P. S." spacing allowed.
        marker = self.marker.strip()
        if marker == "P.P.S":
            pattern = r"p\.\s?p\.\s?s"
        elif marker == "P.S.":
            pattern = r"p\.\s?s\."
        else:
            pattern = re.escape(marker.lower())
        if re.search(pattern, response.lower()):
            return CheckResult(True, f"postscript {marker} found")
        return CheckResult(False, f"no postscript starting with {marker}")

    def ifeval(self):
        return [("detectable_content:postscript", {"postscript_marker": self.marker})]


class Placeholders(Constraint):
    id: ClassVar[str] = "content:placeholders"
    n: int = Field(ge=1)

    def instruction(self) -> str:
        return (
            f"The response must contain at least {self.n} placeholders in square brackets, "
            "such as [address]."
        )

    def check(self, response: str) -> CheckResult:
        count = len(re.findall(r"\[.*?\]", response))
        return _counted("placeholders", count, "at least", self.n)

    def ifeval(self):
        return [("detectable_content:number_placeholders", {"num_placeholders": self.n})]


# ---------------------------------------------------------------- language

# py3langid (a maintained fork of langid.py, the identifier whose language codes IFEval's
# instruction cites) ships its naive Bayes model inside the wheel (4.5 MB, numpy only) and
# is deterministic. On 2,000 AlpacaEval responses cut to 500 characters (2-core machine,
# load average about 5) it took 0.3 ms per response; lingua-language-detector took 7 ms in
# low-accuracy mode (14 ms high, 900 MB resident) and langdetect, IFEval's own, 6 ms and is
# random unless seeded. It replaces a stop-word vote over seven European languages.
# The model is restricted to LANGUAGES: with all of its 140 labels, about 3% of English
# answers (lists, code, one-word replies) came out as Nigerian Pidgin, Kabyle or Latin.
LANGUAGES = {
    # IFEval's 30 response languages (lm_eval instructions_util.LANGUAGE_CODES)
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi",
    "fr": "French", "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian",
    "bn": "Bengali", "uk": "Ukrainian", "th": "Thai", "ur": "Urdu", "ta": "Tamil",
    "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish", "he": "Hebrew",
    "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
    # other widely written languages, so their text is not forced onto a neighbour
    "nl": "Dutch", "zh": "Chinese", "tr": "Turkish", "id": "Indonesian", "cs": "Czech",
    "sv": "Swedish", "da": "Danish", "no": "Norwegian", "ro": "Romanian", "hu": "Hungarian",
    "el": "Greek", "ca": "Catalan",
}  # fmt: skip
LANGUAGE_NAMES = LANGUAGES


@functools.cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def identify_language(text: str, max_chars: int | None = None) -> tuple[str, float]:
    """(ISO 639-1 code from LANGUAGES, probability) by py3langid; `max_chars` reads only the
    start of long texts (the model's cost is linear in the bytes)."""
    language, probability = _identifier().classify(text[:max_chars] if max_chars else text)
    return language, probability


def has_letters(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _english(response: str, what: str) -> CheckResult:
    # IFEval counts a text with nothing to identify as followed; so do we.
    if not has_letters(response):
        return CheckResult(True, f"{what}; no letters to identify a language")
    language, probability = identify_language(response)
    if language == "en":
        return CheckResult(True, f"{what}, English (p={probability:.2f})")
    return CheckResult(False, f"{what}, but looks like {language!r} (p={probability:.2f})")


class ResponseLanguage(Constraint):
    """The whole response in one language, identified by py3langid (`identify_language`)."""

    id: ClassVar[str] = "language:response_language"
    language: str

    @field_validator("language")
    @classmethod
    def _known(cls, language: str) -> str:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
        return language

    def instruction(self) -> str:
        name = LANGUAGES[self.language]
        return f"Your entire response should be in {name}; no other language is allowed."

    def check(self, response: str) -> CheckResult:
        if not has_letters(response):
            return CheckResult(True, "no letters to identify a language")
        language, probability = identify_language(response)
        if language == self.language:
            return CheckResult(True, f"identified as {language} (p={probability:.2f})")
        return CheckResult(
            False, f"identified as {language} (p={probability:.2f}), expected {self.language}"
        )

    def ifeval(self):
        return [("language:response_language", {"language": self.language})]


# Ids that older constraint lists may carry, and the id that replaced each.
ALIASES = {"language:stopword_heuristic": "language:response_language"}


# ---------------------------------------------------------------- registry API


def build(spec: dict[str, Any]) -> Constraint:
    """A constraint from ``{"id": ..., "params": {...}}``."""
    if not isinstance(spec, dict) or "id" not in spec:
        raise ConstraintError(f"a constraint needs an 'id' field, got {spec!r}")
    cls = REGISTRY.get(ALIASES.get(spec["id"], spec["id"]))
    if cls is None:
        raise ConstraintError(
            f"unknown constraint id {spec['id']!r}; known ids: {', '.join(sorted(REGISTRY))}"
        )
    extra = set(spec) - {"id", "params"}
    if extra:
        raise ConstraintError(f"constraint {spec['id']!r}: unexpected fields {sorted(extra)}")
    try:
        return cls.model_validate(spec.get("params") or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise ConstraintError(f"constraint {spec['id']!r}: {problems}") from None


def dumps(constraints: list[Constraint]) -> str:
    return json.dumps([c.to_dict() for c in constraints], ensure_ascii=False)


def loads(text: str) -> list[Constraint]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConstraintError(f"constraint list is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConstraintError("a constraint list must be a JSON array")
    out = []
    for i, item in enumerate(data):
        try:
            out.append(build(item))
        except ConstraintError as exc:
            raise ConstraintError(f"constraint #{i}: {exc}") from None
    return out


def check_all(response: str, constraints: list[Constraint]) -> list[ConstraintResult]:
    return [ConstraintResult(c.id, *c.check(response)) for c in constraints]


def all_followed(response: str, constraints: list[Constraint]) -> bool:
    return all(r.ok for r in check_all(response, constraints))


def render_instructions(constraints: list[Constraint]) -> str:
    """The constraints' instructions, one sentence each, to append to a prompt."""
    return " ".join(c.instruction() for c in constraints)


__all__ = [
    "LANGUAGES",
    "REGISTRY",
    "CheckResult",
    "Constraint",
    "ConstraintError",
    "ConstraintResult",
    "build",
    "check_all",
    "dumps",
    "identify_language",
    "loads",
    "render_instructions",
]
