"""A local folder in nvidia/HelpSteer3's Hub layout, standing in for the real dataset.

Layout and rows follow the dataset card (huggingface.co/datasets/nvidia/HelpSteer3): a
README whose front matter names the five configs, and `<config>/train.jsonl.gz` /
`<config>/validation.jsonl.gz` with the keys in the card's examples' order.
"""

import gzip
import json
from pathlib import Path

CONFIGS = ("preference", "feedback", "edit", "edit_quality", "principle")

README = (
    "---\nlicense: cc-by-4.0\nconfigs:\n"
    + "".join(
        f"- config_name: {c}\n"
        + ("  default: true\n" if c == "preference" else "")
        + "  data_files:\n"
        + f"  - split: train\n    path: {c}/train.jsonl.gz\n"
        + f"  - split: validation\n    path: {c}/validation.jsonl.gz\n"
        for c in CONFIGS
    )
    + "---\n# HelpSteer3 (test stand-in)\n"
)

CODE = {"domain": "code", "language": "python"}
MULTI = {"domain": "multilingual", "language": "french"}
TURNS = [
    {"role": "user", "content": "lets do python coding"},
    {"role": "assistant", "content": "def greet(name):\n    return f'Hello, {name}!'"},
    {"role": "user", "content": "Can you fix <= to < ?"},
]
FRENCH = [{"role": "user", "content": "Traduis « bonjour » en anglais."}]


def preference_rows(split: str) -> list[dict]:
    return [
        {
            **CODE,
            "context": TURNS,
            "response1": f"Yes, here is the corrected code ({split}).",
            "response2": "Sure: tasks_B = [t for t in tasks if t < x]",
            "overall_preference": -2,
            "individual_preference": [
                {"score": -1, "reasoning": "@Response 1 is slightly better than @Response 2."},
                {"score": -3, "reasoning": "@Response 1 is much better than @Response 2."},
                {"score": -2, "reasoning": "@Response 1 is better than @Response 2."},
            ],
        },
        {
            **MULTI,
            "context": FRENCH,
            "response1": "Hello.",
            "response2": f"« Bonjour » se traduit par « hello » ({split}).",
            "overall_preference": 1,
            "individual_preference": [
                {"score": 1, "reasoning": "@Response 2 is slightly better than @Response 1."},
                {"score": 1, "reasoning": "@Response 2 explains the translation."},
                {"score": 2, "reasoning": "@Response 2 is better than @Response 1."},
            ],
        },
    ]


def feedback_rows(split: str) -> list[dict]:
    return [
        {
            **CODE,
            "context": TURNS,
            "response1": f"Yes, here is the corrected code ({split}).",
            "response2": "Sure: tasks_B = [t for t in tasks if t < x]",
            "feedback1": ["The response is mostly helpful. It fixes the comparison."],
            "feedback2": [
                "The response is partially helpful. It shows one line only.",
                "The response is slightly helpful. The rest of the code is missing.",
            ],
        }
    ]


def edit_rows(split: str) -> list[dict]:
    return [
        {
            **CODE,
            "context": TURNS,
            "original_response": "Sure: tasks_B = [t for t in tasks if t < x]",
            "edited_response": f"Here is the whole function with `<` ({split}).",
            "feedback": [
                "The response is partially helpful. It shows one line only.",
                "The response is partially helpful. It should show the whole function.",
            ],
            "change_summary": "Shows the whole function instead of one line.",
        }
    ]


def edit_quality_rows(split: str) -> list[dict]:
    return [
        {
            **MULTI,
            "context": FRENCH,
            "original_response": "Hello.",
            "good_edited_response": f"« Bonjour » means « hello » ({split}).",
            "bad_edited_response": "Bonjour!",
            "feedback": ["The response is partially helpful. It does not explain anything."],
        }
    ]


def principle_rows(split: str) -> list[dict]:
    return [
        {
            **MULTI,
            "context": FRENCH,
            "response": f"Hello. ({split})",
            "principle": "answers in the language the user expects",
            "fulfilment": "Yes",
        }
    ]


ROWS = {
    "preference": preference_rows,
    "feedback": feedback_rows,
    "edit": edit_rows,
    "edit_quality": edit_quality_rows,
    "principle": principle_rows,
}


def write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return path


def write_hub_folder(root: Path) -> Path:
    """The whole stand-in: README plus every config's train and validation files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(README, encoding="utf-8")
    for config, rows in ROWS.items():
        for split in ("train", "validation"):
            write_jsonl_gz(root / config / f"{split}.jsonl.gz", rows(split))
    return root
