"""The reward-model training loop (one loop for every objective).

    python -m trainers.train_rm CONFIG.toml [--set optim.lr=1e-5 ...]
    torchrun --nproc_per_node=N -m trainers.train_rm CONFIG.toml

Under torchrun (WORLD_SIZE > 1) the model is sharded with FSDP2 over NCCL (GPU) or gloo
(CPU). The global batch is the same whatever the number of processes, and every
micro-batch's loss is divided by the count of the whole global batch, so N processes
train the same model as one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist

from helpsteer.atomic import atomic_path, write_json, write_text
from helpsteer.attributes import MISSING_LABEL
from helpsteer.progress import Reporter
from trainers import checkpoint as ckpt
from trainers import packing, provenance
from trainers.config import ConfigError, TrainConfig, load_config
from trainers.data import (
    DataError,
    Encoded,
    Reject,
    Samples,
    detect_kind,
    encode,
    pad_batch,
    plan_epoch,
    read_rows,
    split_batch,
    to_samples,
)
from trainers.losses import get_loss
from trainers.metrics import MetricsSink, pairwise, per_attribute
from trainers.model import (
    ModelError,
    base_model,
    choose_pad_token,
    enable_activation_checkpointing,
    export_hf,
    label_names,
    load_model,
    load_tokenizer,
    use_bf16,
    wrap_fsdp,
)


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. a non-finite loss); the message says what to do."""


USER_ERRORS = (ConfigError, DataError, ModelError, TrainingError)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    mesh: object = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world > 1


def setup_dist() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world == 1:
        return Dist(device=device)
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    mesh = init_device_mesh(device.type, (world,))
    return Dist(dist.get_rank(), world, device, mesh)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# --- data ------------------------------------------------------------------------------


@dataclass
class Split:
    samples: Samples
    enc: Encoded
    pad_clashes: int = 0


def _load_split(cfg: TrainConfig, spec: str, split: str, tok) -> Samples:
    rows = read_rows(spec, split)
    if cfg.data.limit:
        rows.rows, rows.lines = rows.rows[: cfg.data.limit], rows.lines[: cfg.data.limit]
    if rows.rows:
        kind = detect_kind(rows.rows)
        if (kind == "bt") != cfg.objective.is_bt:
            raise DataError(
                f"{spec}: holds {'preference pairs' if kind == 'bt' else 'attribute ratings'} "
                f"but objective.loss is {cfg.objective.loss!r}"
            )
    return to_samples(rows, cfg.objective.is_bt, cfg.objective.attributes)


def _holdout(samples: Samples, fraction: float, seed: int) -> tuple[Samples, Samples]:
    order = list(range(len(samples.samples)))
    random.Random(seed).shuffle(order)
    n_valid = int(round(len(order) * fraction))
    pick = set(order[:n_valid])
    valid = [s for i, s in enumerate(samples.samples) if i in pick]
    train = [s for i, s in enumerate(samples.samples) if i not in pick]
    return Samples(train, samples.rejects, samples.ties), Samples(valid, [])


def _encode_split(samples: Samples, tok, cfg: TrainConfig) -> Split:
    """Tokenize; a sequence holding the pad id is rejected (its reward position would be
    ambiguous, since the head reads the last non-pad token)."""
    enc = encode(tok, samples.samples, cfg.data.max_length, cfg.data.truncation_side)
    k = enc.per_sample
    bad = {i // k for i, ids in enumerate(enc.ids) if tok.pad_token_id in ids}
    if bad:
        for i in sorted(bad):
            s = samples.samples[i]
            reason = f"contains the pad token {tok.pad_token!r}; set model.pad_token"
            samples.rejects.append(Reject(s.source, s.line, reason))
        keep = [i for i in range(len(samples.samples)) if i not in bad]
        samples.samples = [samples.samples[i] for i in keep]
        enc = Encoded([enc.ids[i * k + j] for i in keep for j in range(k)], k, enc.truncated)
    return Split(samples, enc, len(bad))


def load_data(cfg: TrainConfig, tok) -> tuple[Split, Split | None]:
    train = _load_split(cfg, cfg.data.train, cfg.data.split, tok)
    valid = None
    if cfg.data.valid:
        valid = _load_split(cfg, cfg.data.valid, cfg.data.valid_split, tok)
        train.rejects += valid.rejects
        valid.rejects = []
    elif cfg.data.valid_fraction > 0:
        train, valid = _holdout(train, cfg.data.valid_fraction, cfg.seed)
    if not train.samples:
        raise DataError(
            f"{cfg.data.train}: no usable rows ({len(train.rejects)} rejected, {train.ties} ties)"
        )
    train_split = _encode_split(train, tok, cfg)
    valid_split = _encode_split(valid, tok, cfg) if valid and valid.samples else None
    if valid_split:
        train.rejects += valid_split.samples.rejects
    return train_split, valid_split


def write_rejects(out_dir: Path, rejects: list[Reject]) -> None:
    rejects = sorted(rejects, key=lambda r: (r.source, r.line))
    text = "".join(
        json.dumps({"source": r.source, "line": r.line, "reason": r.reason}) + "\n" for r in rejects
    )
    write_text(out_dir / "rejected.jsonl", text)


# --- forward and loss ------------------------------------------------------------------


class Trainer:
    """Holds the model, optimizer and data of one run; `run()` trains to the end."""

    def __init__(self, cfg: TrainConfig, dist_: Dist, reporter: Reporter):
        _quiet_libraries()
        self.cfg, self.d, self.rep = cfg, dist_, reporter
        self.out = Path(cfg.output_dir)
        self.loss_fn = get_loss(cfg.objective.loss)
        self.bt = cfg.objective.is_bt
        self.names = label_names(cfg)
        self.started = time.time()

    # setup

    def setup(self) -> None:
        cfg, d = self.cfg, self.d
        seed_everything(cfg.seed)
        self.tok = load_tokenizer(cfg)
        self.added_pad = choose_pad_token(self.tok, cfg.model.pad_token)
        self.train, self.valid = load_data(cfg, self.tok)
        if d.main:
            write_rejects(self.out, self.train.samples.rejects)
        seed_everything(cfg.seed)
        model = load_model(cfg, self.tok, self.added_pad)
        if cfg.lora.enabled:
            from trainers.model import apply_lora

            model = apply_lora(model, cfg)
        if cfg.parallel.activation_checkpointing:
            enable_activation_checkpointing(model)
        self._plan_packing(model)
        self.hf_config = base_model(model).config
        if d.sharded:
            # Shard first: FSDP2 moves only this rank's shards to the mesh's device.
            model = wrap_fsdp(model, cfg, d.mesh, d.device)
        else:
            model.to(d.device)
        self.model = model
        self.autocast = use_bf16(cfg, d.device) and not d.sharded and d.device.type == "cuda"
        params = [p for p in model.parameters() if p.requires_grad]
        o = cfg.optim
        # One fused kernel per step instead of a dozen foreach passes (TRL's default too).
        self.optim = torch.optim.AdamW(
            params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay, fused=True
        )
        per_epoch = len(self.train.samples.samples) // o.batch_size
        if per_epoch == 0:
            raise DataError(
                f"{cfg.data.train}: {len(self.train.samples.samples)} usable samples is fewer "
                f"than one batch (optim.batch_size = {o.batch_size})"
            )
        self.steps_per_epoch = per_epoch
        self.total_steps = min(o.max_steps or per_epoch * o.epochs, per_epoch * o.epochs)
        warmup = max(o.warmup_steps, math.ceil(o.warmup_ratio * self.total_steps))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.optim,
            partial(lr_factor, warmup=warmup, total=self.total_steps, cfg=o),
        )
        per_rank = o.batch_size // o.micro_batch_size
        if per_rank % d.world:
            raise ConfigError(
                f"optim.batch_size / optim.micro_batch_size = {per_rank} micro-batches per step "
                f"cannot be shared evenly by {d.world} processes"
            )
        self.lengths = self.train.enc.lengths()

    def _plan_packing(self, model) -> None:
        """Pack micro-batches when the config asks and the base can; say why not otherwise."""
        self.pack_attn, self.token_scores, self.share_prompt = None, None, False
        self.reward_tokens = False
        requested = self.cfg.model.attn_implementation
        if not self.cfg.data.packing:
            self._no_packing(model, "off (data.packing = false): padded batches")
            return
        head = packing.reward_head(model)
        if head is None:
            base = base_model(model)
            self._no_packing(
                model,
                f"off: {type(base).__name__} reads its reward through a pooled first token, "
                "and transformers' bidirectional masks ignore position_ids, so this encoder "
                "cannot pack; padded batches",
            )
            return
        attn = packing.kernel_for(requested, self.d.device)
        scores = packing.TokenScores(head)
        # Checked on CPU before the move to the device, where flash-attention cannot run;
        # our kernel takes the same packed inputs through the same attention interface.
        check = packing.KERNEL if attn in packing.FLASH else attn
        probe = self._probe_seqs()
        error = packing.packing_error(model, scores, probe, self.tok.pad_token_id, check)
        if error > 1e-4:
            scores.remove()
            self._no_packing(
                model,
                f"off: packed rewards differ from padded ones by {error:.2e} on this base "
                f"(attention {check}); padded batches",
            )
            return
        self.packing_note = f"on: one flat row per micro-batch, attention {attn}"
        self.share_prompt = self._can_share_prompt(model, attn)
        if self.share_prompt:
            self.packing_note += ", each pair's shared prompt computed once"
        # Checked before the switch to `attn`: the check's padded reference needs the base's.
        self.reward_tokens = self._prune_last_layer(model, scores, probe, check)
        packing.set_attention(model, attn)
        self.pack_attn, self.token_scores = attn, scores
        self.rep.note(f"packing {self.packing_note}")

    def _prune_last_layer(self, model, scores, probe, check: str) -> bool:
        """The last layer at the reward tokens only, when the base allows it and the
        rewards come out the same on the probe sequences."""
        why = packing.prune_last_layer(model, self.cfg.data.max_length)
        if why is None:
            error = packing.packing_error(
                model, scores, probe, self.tok.pad_token_id, check, reward_tokens=True
            )
            if error <= 1e-4:
                self.packing_note += ", last layer at the reward tokens only"
                return True
            packing.unprune_last_layer(model)
            why = f"its rewards differ from the full layer's by {error:.2e}"
        self.packing_note += f", last layer in full ({why})"
        return False

    def _can_share_prompt(self, model, attn: str) -> bool:
        """Shared prompts need pairs, our kernel, and full causal attention (no window)."""
        base = base_model(model)
        window = getattr(base.config, "sliding_window", None)
        return (
            self.cfg.data.share_prompt
            and self.bt
            and attn == packing.KERNEL
            and (window is None or window >= self.cfg.data.max_length)
        )

    def _no_packing(self, model, note: str) -> None:
        requested = self.cfg.model.attn_implementation
        if requested in packing.FLASH and self.d.device.type == "cuda":
            packing.set_attention(model, requested)  # loaded with sdpa for the packing check
        self.packing_note = note
        self.rep.note(f"packing {note}")

    def _probe_seqs(self) -> list[list[int]]:
        """A few short training sequences of different lengths for the packing check."""
        ids = self.train.enc.ids[:4]
        return [s[: max(2, 24 - 5 * i)] for i, s in enumerate(ids)]

    # model calls

    def _autocast(self):
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _scores(self, seqs: list[list[int]], pairs: bool = False) -> tuple[torch.Tensor, int, int]:
        """Rewards [sequences, outputs], real tokens and tokens computed (padding included,
        a shared prompt once). `pairs`: chosen of every pair, then rejected of every pair."""
        if self.pack_attn:
            packed = self._pack(seqs, pairs)
            with self._autocast():
                logits = packing.packed_scores(
                    self.model, self.token_scores, packed, self.pack_attn, self.reward_tokens
                )
            return logits.float(), sum(len(q) for q in seqs), packed.bounds[-1]
        ids, mask = pad_batch(seqs, self.tok.pad_token_id, self.cfg.data.padding_side)
        ids_t = torch.tensor(ids, device=self.d.device)
        mask_t = torch.tensor(mask, device=self.d.device)
        with self._autocast():
            logits = self.model(input_ids=ids_t, attention_mask=mask_t).logits
        real = int(mask_t.sum())
        return logits.float(), real, ids_t.numel()

    def _pack(self, seqs: list[list[int]], pairs: bool) -> packing.Packed:
        if pairs and self.share_prompt:
            n = len(seqs) // 2
            return packing.pack_pairs(seqs[:n], seqs[n:], self.d.device)
        return packing.pack(seqs, self.d.device)

    def _seqs(self, split: Split, idx: list[int]) -> list[list[int]]:
        k = split.enc.per_sample
        # chosen of every pair first, then rejected: one forward for both halves
        return [split.enc.ids[i * k + j] for j in range(k) for i in idx]

    def _loss(self, split: Split, idx: list[int]):
        logits, real, total = self._scores(self._seqs(split, idx), pairs=self.bt)
        samples = split.samples.samples
        if self.bt:
            n = len(idx)
            chosen, rejected = logits[:n, 0], logits[n:, 0]
            margin = torch.tensor([samples[i].margin for i in idx], device=logits.device)
            parts = self.loss_fn(chosen, rejected, margin)
            extra = (chosen.detach(), rejected.detach())
        else:
            labels = torch.tensor([samples[i].labels for i in idx], device=logits.device)
            parts = self.loss_fn(logits, labels)
            extra = (logits.detach(),)
        return parts, extra, real, total

    def _global_count(self, batch: list[int]) -> int:
        if self.bt:
            return len(batch)
        samples = self.train.samples.samples
        return sum(v != MISSING_LABEL for i in batch for v in samples[i].labels)

    # one optimizer step

    def step(self, batch: list[int]) -> dict[str, float]:
        cfg, d = self.cfg, self.d
        micro = split_batch(batch, cfg.optim.micro_batch_size, d.world, d.rank)
        denom = self._global_count(batch)
        stats = torch.zeros(5, dtype=torch.float64)  # loss, correct, margin sum, real, computed
        self.model.train()
        for j, mb in enumerate(micro):
            if d.sharded:
                self.model.set_requires_gradient_sync(j == len(micro) - 1)
            parts, extra, real, total = self._loss(self.train, mb)
            # FSDP averages gradients over processes; the loss is already a global mean.
            (parts.total * (d.world / denom)).backward()
            stats[0] += float(parts.total.detach())
            if self.bt:
                diff = extra[0] - extra[1]
                stats[1] += float((diff > 0).sum())
                stats[2] += float(diff.sum())
            stats[3] += real
            stats[4] += total
        if d.sharded:
            dist.all_reduce(stats)
        loss = float(stats[0]) / denom
        if not math.isfinite(loss):
            self.optim.zero_grad(set_to_none=True)
            return {"loss": loss}
        grad_norm = self._clip()
        self.optim.step()
        self.sched.step()
        self.optim.zero_grad(set_to_none=True)
        out = {"loss": loss, "grad_norm": grad_norm, "lr": self.sched.get_last_lr()[0]}
        if self.bt:
            out["accuracy"] = float(stats[1]) / len(batch)
            out["mean_margin"] = float(stats[2]) / len(batch)
        # Shared prompts compute fewer tokens than the sequences hold: no padding then.
        out["tokens"], out["computed_tokens"] = float(stats[3]), float(stats[4])
        out["padded_tokens"] = max(float(stats[4] - stats[3]), 0.0)
        return out

    def _clip(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = self.cfg.optim.max_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    # validation

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        split, d = self.valid, self.d
        n = len(split.samples.samples)
        lengths = split.enc.lengths()
        order = sorted(range(n), key=lambda i: -lengths[i])
        size = self.cfg.optim.micro_batch_size
        chunks = [order[i : i + size] for i in range(0, n, size)]
        rounds = math.ceil(len(chunks) / d.world)
        self.model.eval()
        mine: list[tuple[int, list[float]]] = []
        loss_sum = 0.0
        for r in range(rounds):
            c = r * d.world + d.rank
            # Every process must run the same number of forwards under FSDP; a process
            # without a chunk left repeats the first one and drops the result.
            idx = chunks[c] if c < len(chunks) else chunks[0]
            parts, extra, _, _ = self._loss(split, idx)
            if c >= len(chunks):
                continue
            loss_sum += float(parts.total)
            rows = torch.stack(extra, dim=-1) if self.bt else extra[0]
            mine += list(zip(idx, rows.cpu().tolist(), strict=True))
        gathered = [mine]
        sums = torch.tensor([loss_sum], dtype=torch.float64)
        if d.sharded:
            gathered = [None] * d.world
            dist.all_gather_object(gathered, mine)
            dist.all_reduce(sums)
        scores = dict(item for part in gathered for item in part)
        return self._valid_metrics(scores, float(sums[0]))

    def _valid_metrics(self, scores: dict[int, list[float]], loss_sum: float) -> dict:
        samples = self.valid.samples.samples
        idx = sorted(scores)
        if self.bt:
            out = pairwise([scores[i][0] for i in idx], [scores[i][1] for i in idx])
            return {"loss": loss_sum / len(idx), **out, "pairs": len(idx)}
        labels = [samples[i].labels for i in idx]
        count = sum(v != MISSING_LABEL for row in labels for v in row)
        out = per_attribute([scores[i] for i in idx], labels, self.names)
        return {"loss": loss_sum / max(count, 1), **out, "samples": len(idx)}

    # checkpoints

    def _trainer_state(self, step: int, finished: bool) -> dict:
        return {
            "step": step,
            "scheduler": self.sched.state_dict(),
            "world": self.d.world,
            "fingerprint": self.fingerprint,
            "finished": finished,
        }

    def save(self, step: int, finished: bool = False) -> Path:
        return ckpt.save(
            self.out / "checkpoints",
            step,
            self.model,
            self.optim,
            self._trainer_state(step, finished),
            self.d.rank,
            self.cfg.checkpoint.keep_last,
        )

    def prior_checkpoint(self) -> tuple[Path, dict] | None:
        """The checkpoint this run goes on from, checked against this config; None: fresh."""
        root = self.out / "checkpoints"
        if not self.cfg.checkpoint.resume:
            # Left in place, the earlier run's higher steps would outlive this run's
            # checkpoints in the pruning, and a later resume would pick them up.
            if self.d.main and (n := ckpt.discard(root)):
                self.rep.note(f"checkpoint.resume = false: removed {n} earlier checkpoints")
            return None
        path = ckpt.latest(root)
        if path is None:
            return None
        state = ckpt.read_state(path)
        self._check_same_training(path, state.get("fingerprint"))
        return path, state

    def _check_same_training(self, path: Path, recorded: dict | None) -> None:
        if recorded is None:
            self.rep.note(
                f"{path} does not record its config (saved before checkpoints did): "
                "resuming without checking that it matches"
            )
            return
        diffs = provenance.differences(recorded, self.fingerprint)
        if diffs:
            raise ConfigError(
                f"{path} was trained with a different config; resuming from it would "
                f"mix two trainings. Differs (checkpoint -> now): {'; '.join(diffs)}. "
                "To go on, use a new output_dir, or set checkpoint.resume = false "
                "(--set checkpoint.resume=false) to train from scratch here: that deletes "
                f"the checkpoints in {path.parent} and replaces {self.out / 'model'}"
            )

    def _already_trained(self, prior: tuple[Path, dict] | None) -> bool:
        """The last run finished with this config and exported its model."""
        done = (self.out / "model" / "config.json").exists()
        return bool(prior and prior[1].get("finished") and done)

    def resume(self, prior: tuple[Path, dict] | None) -> int:
        if prior is None:
            return 0
        path = prior[0]
        state = ckpt.load(path, self.model, self.optim, self.d.rank)
        self.sched.load_state_dict(state["scheduler"])
        self.rep.note(f"resumed from {path} (step {state['step']})")
        return int(state["step"])

    # the loop

    def run(self) -> dict:
        self.fingerprint = provenance.fingerprint(self.cfg)
        prior = self.prior_checkpoint()
        if self._already_trained(prior):
            step = int(prior[1]["step"])
            self.rep.note(
                f"already trained: {self.out / 'model'} holds the model of this config "
                f"(step {step}); nothing to do"
            )
            return {"step": step, "stopped": False, "already_trained": True}
        self.setup()
        step = self.resumed_from = self.resume(prior)
        self.sink = (
            MetricsSink(self.out, self.cfg.logging.tensorboard, step) if self.d.main else None
        )
        self.tokens = self.padded = self.computed = 0.0
        self.t0 = time.time()
        stopped, last_valid = False, {}
        with self.rep.task("training", total=self.total_steps) as bar:
            bar.update(completed=step)
            while step < self.total_steps and not stopped:
                out = self.step(self._batch(step))
                if not math.isfinite(out["loss"]):
                    self.save(step)
                    raise TrainingError(
                        f"loss is {out['loss']} at step {step + 1}: stopped; the state before "
                        f"this step is saved in {self.out / 'checkpoints'} (lower optim.lr or "
                        "check the data)"
                    )
                step += 1
                rate = self._log_step(step, out)
                bar.update(
                    completed=step, description=f"training loss {out['loss']:.4f} {rate:,.0f} tok/s"
                )
                last_valid = self._maybe_evaluate(step) or last_valid
                stopped = self._maybe_save(step)
        elapsed = time.time() - self.t0
        if not stopped:
            if self.valid:
                last_valid = self.evaluate()
                self._write("valid", step, last_valid)
            self.save(step, finished=True)
            self.export()
        if self.sink:
            self.sink.close()
        summary = {
            "step": step,
            "stopped": stopped,
            "resumed_from": self.resumed_from,
            "tokens": self.tokens,
            "packing": self.packing_note,
            "padded_fraction": self.padded / max(self.tokens + self.padded, 1),
            "computed_per_token": self.computed / max(self.tokens, 1),
            "tokens_per_s": self.tokens / max(elapsed, 1e-9),
            "train_seconds": elapsed,
            "valid": last_valid,
        }
        if self.d.main:
            self.write_manifest(summary)
        return summary

    def _batch(self, step: int) -> list[int]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if getattr(self, "_epoch", None) != epoch:
            o = self.cfg.optim
            group = self.cfg.data.group_by_length
            self._plan = plan_epoch(self.lengths, o.batch_size, self.cfg.seed, epoch, group)
            self._epoch = epoch
        return self._plan[pos]

    def _write(self, split: str, step: int, values: dict) -> None:
        if self.sink:
            self.sink.write(split, step, values)

    def _log_step(self, step: int, out: dict) -> float:
        self.tokens += out.pop("tokens")
        self.padded += out.pop("padded_tokens")
        self.computed += out.pop("computed_tokens")
        rate = self.tokens / max(time.time() - self.t0, 1e-9)
        if step % self.cfg.logging.every_steps == 0 or step == self.total_steps:
            out["tokens_per_s"] = rate
            out["padded_fraction"] = self.padded / max(self.tokens + self.padded, 1)
            self._write("train", step, out)
        return rate

    def _maybe_evaluate(self, step: int) -> dict:
        every = self.cfg.logging.eval_every_steps
        if not (self.valid and every and step % every == 0 and step < self.total_steps):
            return {}
        values = self.evaluate()
        self._write("valid", step, values)
        return values

    def _maybe_save(self, step: int) -> bool:
        """Save on schedule; True when the run should stop here (checkpoint.stop_after_step)."""
        if step >= self.total_steps:
            return False
        every = self.cfg.checkpoint.every_steps
        stop = step == self.cfg.checkpoint.stop_after_step
        if stop or (every and step % every == 0):
            self.save(step)
        return stop

    def export(self) -> None:
        state = ckpt.full_model_state(self.model)
        if self.d.main:
            with atomic_path(self.out / "model") as tmp:
                export_hf(state, self.hf_config, self.tok, self.cfg, tmp, self.added_pad)
        if self.d.sharded:
            dist.barrier()

    def write_manifest(self, summary: dict) -> None:
        import transformers

        samples = self.train.samples
        counts = {
            "train_samples": len(samples.samples),
            "valid_samples": len(self.valid.samples.samples) if self.valid else 0,
            "rejected": len(samples.rejects),
            "ties_skipped": samples.ties,
            "truncated_sequences": self.train.enc.truncated
            + (self.valid.enc.truncated if self.valid else 0),
            "steps_per_epoch": self.steps_per_epoch,
            "unused_per_epoch": len(samples.samples) % self.cfg.optim.batch_size,
        }
        manifest = {
            "inputs": {"train": self.cfg.data.train, "valid": self.cfg.data.valid},
            "config": self.cfg.model_dump(mode="json"),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "world_size": self.d.world,
            "counts": counts,
            "summary": {k: v for k, v in summary.items() if k != "counts"},
            "wall_seconds": time.time() - self.started,
        }
        summary["counts"] = counts
        write_json(self.out / "manifest.json", manifest)
        write_text(self.out / "report.md", render_report(self.cfg, counts, summary))


def lr_factor(step: int, warmup: int, total: int, cfg) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def render_report(cfg: TrainConfig, counts: dict, summary: dict) -> str:
    lines = [
        f"# Reward model: {cfg.objective.loss} on {cfg.data.train}",
        "",
        f"- base model: {cfg.model.name_or_path}",
        f"- steps: {summary['step']} (resumed from {summary['resumed_from']})",
        *(f"- {k.replace('_', ' ')}: {v}" for k, v in counts.items()),
        f"- tokens/s: {summary['tokens_per_s']:.1f}, padded fraction "
        f"{summary['padded_fraction']:.3f}, tokens computed per real token "
        f"{summary.get('computed_per_token', 1.0):.3f}",
        f"- packing: {summary['packing']}",
    ]
    if summary.get("valid"):
        lines += ["", "## Validation", ""]
        lines += [f"- {k}: {v:.4f}" for k, v in summary["valid"].items()]
    return "\n".join(lines) + "\n"


# --- entry points ----------------------------------------------------------------------


def train(cfg: TrainConfig, reporter: Reporter | None = None) -> dict:
    """Train one reward model as configured (single process or under torchrun)."""
    _quiet_libraries()
    d = setup_dist()
    rep = reporter or Reporter(quiet=not d.main)
    if not d.main:
        rep = Reporter(quiet=True)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    if cfg.recipe.name == "helpsteer2-preference":
        return run_recipe(cfg, d, rep)
    return Trainer(cfg, d, rep).run()


def _quiet_libraries() -> None:
    import warnings

    import transformers

    # The load report always lists the new reward head as missing: expected, not news.
    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message="torch.distributed is disabled")
    warnings.filterwarnings(
        "ignore",
        message=".*(gradient_checkpointing_enable|is_gradient_checkpointing). is deprecated",
    )


def recipe_stages(cfg: TrainConfig) -> tuple[TrainConfig, TrainConfig]:
    """HelpSteer2-Preference: regression on helpfulness, then scaled BT from that model."""
    out = Path(cfg.output_dir)
    r = cfg.recipe
    first = cfg.model_copy(deep=True)
    first.output_dir = str(out / "stage1_regression")
    first.recipe.name = "none"
    first.objective.loss = "regression_mse"
    first.objective.attributes = ["helpfulness"]
    first.data.train, first.data.valid = r.regression_train, r.regression_valid
    first.optim.lr = r.regression_lr or cfg.optim.lr
    first.optim.epochs = r.regression_epochs or cfg.optim.epochs
    second = cfg.model_copy(deep=True)
    second.recipe.name = "none"
    second.model.name_or_path = str(out / "stage1_regression" / "model")
    second.model.tokenizer = None
    return first, second


def run_recipe(cfg: TrainConfig, d: Dist, rep: Reporter) -> dict:
    first, second = recipe_stages(cfg)
    # Stage 1 too goes through the checkpoint check: a finished stage 1 with the same
    # config is skipped there, one trained with another config is refused.
    rep.note("recipe stage 1/2: regression on helpfulness")
    stage1 = Trainer(first, d, rep).run()
    if stage1["stopped"]:
        return {**stage1, "stage": 1}
    rep.note("recipe stage 2/2: scaled Bradley-Terry from the regression model")
    stage2 = Trainer(second, d, rep).run()
    return {**stage2, "stage": 2, "stage1": stage1}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="trainers.train_rm", description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        summary = train(cfg, Reporter(quiet=args.quiet))
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0 and not args.quiet:
        print_summary(cfg, summary)
    return 0


def print_summary(cfg: TrainConfig, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, soft_wrap=True)
    if summary.get("already_trained"):
        return  # said by the trainer's note, with the model's folder
    if summary.get("stopped"):
        console.print(
            f"stopped after step {summary['step']} as configured "
            "(checkpoint.stop_after_step); run again to resume"
        )
        return
    table = Table(title=f"reward model -> {cfg.output_dir}/model")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("steps", str(summary["step"]))
    table.add_row("tokens/s", f"{summary['tokens_per_s']:,.0f}")
    table.add_row("padded fraction", f"{summary['padded_fraction']:.3f}")
    table.add_row("computed / real tokens", f"{summary.get('computed_per_token', 1.0):.3f}")
    table.add_row("packing", summary["packing"])
    for key, value in (summary.get("counts") or {}).items():
        table.add_row(key.replace("_", " "), str(value))
    for key, value in (summary.get("valid") or {}).items():
        table.add_row(f"valid {key}", f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
