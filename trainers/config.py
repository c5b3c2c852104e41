"""The reward-model training config: one pydantic model in documented groups.

Importable without torch, so `hs train --help` and config validation stay fast.
A TOML file maps onto `TrainConfig`; every key can be overridden on the command line
with `--set group.key=value` (the value is parsed as TOML, falling back to a string).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from helpsteer import overrides as overrides_
from helpsteer.attributes import ATTRIBUTES, NEMO_ALIGNER_SLOTS

REGRESSION_LOSSES = ("regression_mse",)
BT_LOSSES = ("bt_plain", "bt_margin", "bt_scaled")
LossName = Literal["regression_mse", "bt_plain", "bt_margin", "bt_scaled"]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the key."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelGroup(_Group):
    """The base model: a local folder or a Hub id, loaded with `from_pretrained`."""

    name_or_path: str = Field(description="HF model folder or Hub id (decoder or encoder).")
    tokenizer: str | None = Field(None, description="Tokenizer folder/id; default: the model's.")
    pad_token: str | None = Field(
        None,
        description="Token used for padding. Default: the tokenizer's pad token when it differs "
        "from EOS/BOS, else its UNK token, else a new `<|reward_pad|>` token.",
    )
    trust_remote_code: bool = False
    attn_implementation: str | None = Field(
        None,
        description="e.g. 'sdpa', 'eager', 'flash_attention_2'. Default: sdpa for padded "
        "batches; packed batches use flash_attention_2 on a GPU where flash-attn is "
        "installed, else 'sdpa_varlen' (SDPA per packed sequence).",
    )


class DataGroup(_Group):
    """Training data: a regression export or a Bradley-Terry (preference) export."""

    train: str = Field(
        description="Parquet/JSONL/JSONL.gz file, `save_to_disk` folder or Hub dataset id."
    )
    valid: str | None = Field(None, description="Validation data in the same forms.")
    split: str = Field("train", description="Split to read from a Hub/`load_dataset` source.")
    valid_split: str = "validation"
    valid_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="Hold out this share of `train` when `valid` is unset."
    )
    max_length: int = Field(1024, ge=8, description="Tokens per sequence after truncation.")
    truncation_side: Literal["left", "right"] = Field(
        "left", description="'left' keeps the end of the conversation (the response)."
    )
    padding_side: Literal["left", "right"] = "right"
    group_by_length: bool = Field(True, description="Batch sequences of similar length.")
    packing: bool = Field(
        True,
        description="Padding-free micro-batches: all sequences of a micro-batch in one row "
        "with per-sequence position_ids (decoder bases; encoders keep padded batches); on "
        "Llama, Mistral and Qwen bases the last layer computes only each sequence's reward "
        "token (same rewards and gradients). false: pad each micro-batch to its longest "
        "sequence.",
    )
    share_prompt: bool = Field(
        True,
        description="Bradley-Terry with packing (attention sdpa_varlen): compute a pair's "
        "common prompt once, both replies attending to it (same rewards and gradients). "
        "false: chosen and rejected each on their own.",
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N rows (smoke runs).")


class ObjectiveGroup(_Group):
    """What the reward head learns.

    regression_mse: masked MSE over `attributes` (labels -100 are ignored);
    bt_plain: -log sigmoid(r_c - r_r); bt_margin: -log sigmoid(r_c - r_r - m);
    bt_scaled: -m * log sigmoid(r_c - r_r), with m = |preference_strength|.
    """

    loss: LossName = "bt_plain"
    attributes: list[str] = Field(
        default_factory=lambda: list(ATTRIBUTES),
        description="Regression outputs, in order (e.g. ['helpfulness'] for helpfulness only).",
    )

    @model_validator(mode="after")
    def _known_attributes(self) -> ObjectiveGroup:
        unknown = [a for a in self.attributes if a not in NEMO_ALIGNER_SLOTS]
        if unknown:
            raise ValueError(
                f"unknown attributes {unknown}; choose from {list(NEMO_ALIGNER_SLOTS)}"
            )
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ValueError("attributes must be a non-empty list without repeats")
        return self

    @property
    def is_bt(self) -> bool:
        return self.loss in BT_LOSSES


class OptimGroup(_Group):
    """AdamW, schedule and batch shape.

    `batch_size` is global (examples or pairs per optimizer step, over all processes);
    gradient accumulation = batch_size / (micro_batch_size * world_size).
    """

    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0.0, le=1.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Cosine floor as share of lr.")
    max_grad_norm: float | None = Field(1.0, description="Clip gradients; null disables.")
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps.")
    batch_size: int = Field(8, ge=1)
    micro_batch_size: int = Field(2, ge=1)


class ParallelGroup(_Group):
    """FSDP2 and memory options (FSDP2 is used whenever WORLD_SIZE > 1)."""

    mixed_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 params/compute on GPU, fp32 on CPU."
    )
    activation_checkpointing: bool = False
    reshard_after_forward: bool = True


class LoraGroup(_Group):
    """Optional LoRA through peft; the score head is always trained and saved."""

    enabled: bool = False
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class CheckpointGroup(_Group):
    """Sharded torch.distributed.checkpoint saves; the final model is also saved in HF format."""

    every_steps: int | None = Field(None, ge=1, description="Save every N steps (and at the end).")
    keep_last: int = Field(2, ge=1)
    resume: bool = Field(True, description="Resume from the newest checkpoint in output_dir.")
    stop_after_step: int | None = Field(
        None, ge=1, description="Save a checkpoint after this step and stop (resume drills)."
    )


class LoggingGroup(_Group):
    every_steps: int = Field(10, ge=1)
    eval_every_steps: int | None = Field(None, ge=1, description="Validate every N steps.")
    tensorboard: bool = True


class RecipeGroup(_Group):
    """helpsteer2-preference: regression on helpfulness over `regression_train` first, then
    scaled BT on `data.train` initialised from that model (head included)."""

    name: Literal["none", "helpsteer2-preference"] = "none"
    regression_train: str | None = None
    regression_valid: str | None = None
    regression_lr: float | None = None
    regression_epochs: int | None = None


class TrainConfig(_Group):
    output_dir: str
    seed: int = 42
    model: ModelGroup
    data: DataGroup
    objective: ObjectiveGroup = Field(default_factory=ObjectiveGroup)
    optim: OptimGroup = Field(default_factory=OptimGroup)
    parallel: ParallelGroup = Field(default_factory=ParallelGroup)
    lora: LoraGroup = Field(default_factory=LoraGroup)
    checkpoint: CheckpointGroup = Field(default_factory=CheckpointGroup)
    logging: LoggingGroup = Field(default_factory=LoggingGroup)
    recipe: RecipeGroup = Field(default_factory=RecipeGroup)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.optim.batch_size % self.optim.micro_batch_size:
            raise ValueError(
                f"optim.batch_size ({self.optim.batch_size}) must be a multiple of "
                f"optim.micro_batch_size ({self.optim.micro_batch_size})"
            )
        if self.model.attn_implementation == "sdpa_varlen" and not self.data.packing:
            raise ValueError("model.attn_implementation 'sdpa_varlen' needs data.packing = true")
        if self.recipe.name == "helpsteer2-preference":
            if not self.recipe.regression_train:
                raise ValueError("recipe 'helpsteer2-preference' needs recipe.regression_train")
            if not self.objective.is_bt:
                raise ValueError("recipe 'helpsteer2-preference' needs a bt_* objective.loss")
        return self


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `group.key=value` overrides to a raw config dict."""
    try:
        return overrides_.apply_overrides(data, overrides)
    except overrides_.OverrideError as exc:
        raise ConfigError(str(exc)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read and validate a TOML config; errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    raw = apply_overrides(raw, overrides or [])
    cfg = validate_config(raw, source=str(path))
    _resolve_beside(cfg, path.parent)
    return cfg


def _resolve_beside(cfg: TrainConfig, folder: Path) -> None:
    """Relative input paths are looked up beside the config file first, then as given."""

    def fix(value: str | None) -> str | None:
        if value is not None and value.startswith("~"):
            value = str(Path(value).expanduser())  # from_pretrained would not expand it
        if value is None or Path(value).is_absolute():
            return value
        beside = folder / value
        return str(beside) if beside.exists() and not Path(value).exists() else value

    cfg.model.name_or_path = fix(cfg.model.name_or_path)
    cfg.model.tokenizer = fix(cfg.model.tokenizer)
    cfg.data.train, cfg.data.valid = fix(cfg.data.train), fix(cfg.data.valid)
    cfg.recipe.regression_train = fix(cfg.recipe.regression_train)
    cfg.recipe.regression_valid = fix(cfg.recipe.regression_valid)


def validate_config(raw: dict, source: str = "<config>") -> TrainConfig:
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where}: {first['msg']}{more}") from None
