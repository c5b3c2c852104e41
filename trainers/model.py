"""Building the reward model and its tokenizer, LoRA, FSDP2 wrapping and HF export."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from helpsteer.attributes import NEMOTRON_340B_REWARD_WEIGHTS
from helpsteer.chat_format import FALLBACK_CHAT_TEMPLATE
from trainers.config import TrainConfig

NEW_PAD_TOKEN = "<|reward_pad|>"
# Kernels the trainer switches to after its packing check on CPU (which runs padded SDPA):
# loading with them would make that check, or the whole model, fail off the GPU.
PACKED_ONLY_AT_SETUP = ("sdpa_varlen", "flash_attention_2", "flash_attention_3")


class ModelError(ValueError):
    """A model or tokenizer that cannot be used for reward training."""


def check_local(value: str, key: str) -> None:
    """A value meant as a local folder must exist: transformers would take it for a Hub
    id and answer with a message about repo id syntax."""
    path = Path(value).expanduser()
    explicit = value.startswith(("/", "./", "../", "~")) or value in (".", "..")
    # "models/rm" whose "models" folder is here: a folder, even if a Hub id looks alike.
    beside = len(path.parts) > 1 and path.parent.is_dir()
    if (explicit or beside) and not path.exists():
        raise ModelError(f"{key}: no such folder: {value}")


def load_tokenizer(cfg: TrainConfig):
    from transformers import AutoTokenizer

    check_local(cfg.model.name_or_path, "model.name_or_path")
    if cfg.model.tokenizer:
        check_local(cfg.model.tokenizer, "model.tokenizer")
    source = cfg.model.tokenizer or cfg.model.name_or_path
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{source}: cannot load tokenizer: {exc}") from None
    if not tok.chat_template:
        tok.chat_template = FALLBACK_CHAT_TEMPLATE
    tok.truncation_side = cfg.data.truncation_side
    tok.padding_side = cfg.data.padding_side
    return tok


def choose_pad_token(tok, wanted: str | None) -> bool:
    """Give the tokenizer a pad token that never stands for real text; True if it is new.

    The HF sequence-classification heads read the reward at the rightmost token that is
    not the pad id, whatever the padding side, so a pad equal to EOS would move the
    reward off a sequence that ends with EOS.
    """
    if wanted is not None:
        if wanted not in tok.get_vocab():
            tok.add_special_tokens({"pad_token": wanted})
            return True
        tok.pad_token = wanted
        return False
    reserved = {tok.eos_token, tok.bos_token}
    if tok.pad_token is not None and tok.pad_token not in reserved:
        return False
    if tok.unk_token is not None and tok.unk_token not in reserved:
        tok.pad_token = tok.unk_token
        return False
    tok.add_special_tokens({"pad_token": NEW_PAD_TOKEN})
    return True


def label_names(cfg: TrainConfig) -> list[str]:
    return ["reward"] if cfg.objective.is_bt else list(cfg.objective.attributes)


def load_model(cfg: TrainConfig, tok, added_pad: bool) -> nn.Module:
    """A plain AutoModelForSequenceClassification with one output per attribute (regression)
    or one reward (BT). A checkpoint whose head already has that shape keeps its head."""
    from transformers import AutoModelForSequenceClassification

    names = label_names(cfg)
    kwargs = {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
        "trust_remote_code": cfg.model.trust_remote_code,
        _dtype_key(): torch.float32,  # master weights stay fp32; bf16 only for compute
    }
    attn = cfg.model.attn_implementation
    if attn and not (cfg.data.packing and attn in PACKED_ONLY_AT_SETUP):
        kwargs["attn_implementation"] = attn
    try:
        model = AutoModelForSequenceClassification.from_pretrained(cfg.model.name_or_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{cfg.model.name_or_path}: cannot load model: {exc}") from None
    if added_pad:
        model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id
    model.config.problem_type = "regression"
    weights = {
        a: NEMOTRON_340B_REWARD_WEIGHTS[a] for a in names if a in NEMOTRON_340B_REWARD_WEIGHTS
    }
    model.config.attribute_weights = weights if not cfg.objective.is_bt else {"reward": 1.0}
    model.config.reward_objective = cfg.objective.loss
    return model


def _dtype_key() -> str:
    """transformers renamed `torch_dtype` to `dtype` in 4.56."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def head_module_names(model: nn.Module) -> list[str]:
    """Names of the classification head modules (trained and saved in full under LoRA)."""
    names = [n for n in ("score", "classifier", "classification_head") if hasattr(model, n)]
    if not names:
        raise ModelError(f"{type(model).__name__}: cannot find its classification head")
    return names


def apply_lora(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        raise ModelError("lora.enabled needs peft: pip install peft") from None
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        modules_to_save=head_module_names(model),
    )
    return get_peft_model(model, lora)


def base_model(model: nn.Module) -> nn.Module:
    """The transformers model under a PEFT (LoRA) wrapper, or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _block_modules(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks to shard one by one (the model's own no-split classes)."""
    base = base_model(model)
    classes = set(getattr(base, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in classes]


def wrap_fsdp(model: nn.Module, cfg: TrainConfig, mesh, device: torch.device) -> nn.Module:
    """FSDP2: shard each transformer block, then the root; bf16 compute on GPU."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kwargs = {"mesh": mesh, "reshard_after_forward": cfg.parallel.reshard_after_forward}
    if use_bf16(cfg, device):
        kwargs["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32
        )
    for block in _block_modules(model):
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    mode = cfg.parallel.mixed_precision
    return mode == "bf16" or (mode == "auto" and device.type == "cuda")


def enable_activation_checkpointing(model: nn.Module) -> None:
    base = base_model(model)
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5 name
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if hasattr(base, "enable_input_require_grads"):
        base.enable_input_require_grads()


def export_hf(
    full_state: dict, model_cfg, tok, cfg: TrainConfig, out_dir: Path, added_pad: bool
) -> None:
    """Write a plain HF checkpoint (safetensors, tokenizer with chat template, config with
    id2label and attribute weights) from a full state dict. Rank 0 only."""
    from transformers import AutoModelForSequenceClassification

    if cfg.lora.enabled:
        model = _merged_lora(full_state, cfg, tok, added_pad)
    else:
        model = AutoModelForSequenceClassification.from_config(
            model_cfg, **{_dtype_key(): torch.float32}
        )
        missing, unexpected = model.load_state_dict(full_state, strict=False)
        if unexpected or [k for k in missing if not _is_tied(model, k)]:
            raise ModelError(f"export: state dict mismatch: missing {missing}, extra {unexpected}")
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def _is_tied(model: nn.Module, key: str) -> bool:
    return key in (getattr(model, "_tied_weights_keys", None) or {})


def _merged_lora(full_state: dict, cfg: TrainConfig, tok, added_pad: bool) -> nn.Module:
    fresh = load_model(cfg, tok, added_pad)
    peft_model = apply_lora(fresh, cfg)
    peft_model.load_state_dict(full_state)
    return peft_model.merge_and_unload()
