"""Training loop shared by the four targets: configs, deterministic data order, checkpoints with
full RNG state (bit-for-bit resume), metric logging, progress.

Run folder (``--out RUN``)::

    RUN/config.yaml            resolved config (defaults + --config + --set)
    RUN/metrics.jsonl          one JSON object per logged step / validation
    RUN/checkpoints/step_0000100.pt, RUN/checkpoints/last.pt
    RUN/tensorboard/           when the ``tensorboard`` package is installed

Checkpoint (``torch.save`` of plain containers and tensors, loaded with ``weights_only=True``):
``format`` "emoca-edge-train-checkpoint", ``version``, ``target``, ``config``, ``step``, ``epoch``,
``batch_in_epoch``, ``modules`` {name: state dict}, ``optimizer``, ``scheduler``, ``rng`` (torch,
CUDA, NumPy, Python), ``extra`` (target-specific, e.g. model dimensions for export).

Determinism: the sample order of epoch e is ``randperm(n)`` from a generator seeded with
(seed, e); augmentations draw from per-sample generators seeded with (seed, epoch, index); the
global RNGs are saved in checkpoints. Resuming from step k therefore reproduces the parameters of an
uninterrupted run exactly on the same device and library versions.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import random
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml

log = logging.getLogger("emoca_edge.training")

TARGETS = {
    "emoca-coarse": ("emoca_edge.training.stages.emoca", "CoarseStage"),
    "emoca-detail": ("emoca_edge.training.stages.emoca", "DetailStage"),
    "emonet": ("emoca_edge.training.stages.emonet", "EmoNetStage"),
    "emorec": ("emoca_edge.training.stages.emorec", "EmoRecStage"),
}
CHECKPOINT_FORMAT = "emoca-edge-train-checkpoint"
CHECKPOINT_VERSION = 1


class ConfigError(ValueError):
    """A config file or override that does not fit the target's config."""


# ---------------------------------------------------------------------------------------------- configs
def default_config(target: str) -> dict:
    """The target's shipped default config (``training/configs/<target>.yaml``)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown training target {target!r}; expected one of {', '.join(TARGETS)}")
    text = resources.files("emoca_edge.training").joinpath("configs", f"{target}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _merge(base: dict, update: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if k not in out:
            raise ConfigError(f"{where}: unknown key {k!r} (known: {', '.join(sorted(out))})")
        if isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = _merge(out[k], v, f"{where}.{k}")
        elif isinstance(out[k], dict) and v is not None:
            raise ConfigError(f"{where}.{k}: expected a mapping, got {type(v).__name__}")
        else:
            if isinstance(out[k], float) and isinstance(v, str):
                try:  # YAML 1.1 reads "1e-5" (no dot) as a string
                    v = float(v)
                except ValueError:
                    raise ConfigError(f"{where}.{k}: expected a number, got {v!r}") from None
            out[k] = v
    return out


def parse_override(text: str) -> dict:
    """``a.b.c=VALUE`` (VALUE parsed as YAML) -> nested dict."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE (e.g. train.lr=1e-5)")
    key, value = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        val = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({e})") from e
    if isinstance(val, str):
        try:  # YAML 1.1 reads "1e-5" (no dot) as a string
            val = float(val)
        except ValueError:
            pass
    out: dict = {}
    cur = out
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = val
    return out


def load_config(target: str, path: str | os.PathLike | None = None, overrides=()) -> dict:
    """Default config of ``target``, updated with the YAML file ``path`` and ``KEY=VALUE`` overrides.
    Unknown keys are errors naming the file (typos must not be silently ignored)."""
    cfg = default_config(target)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            user = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({e})") from e
        if not isinstance(user, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        user.pop("target", None)
        cfg = _merge(cfg, user, str(p))
    for o in overrides:
        cfg = _merge(cfg, parse_override(o), f"--set {o}")
    cfg["target"] = target
    return cfg


def resolve_path(value, base: Path | None = None) -> Path | None:
    """Config paths: ``~`` expanded; relative paths are taken relative to ``base`` when given."""
    if value in (None, ""):
        return None
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() or base is None else base / p


# ---------------------------------------------------------------------------------------------- rng
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": _np_state_to_plain(np.random.get_state()),
          "python": _py_state_to_plain(random.getstate())}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(_np_state_from_plain(st["numpy"]))
    random.setstate(_py_state_from_plain(st["python"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _np_state_to_plain(s):
    return {"name": s[0], "keys": torch.from_numpy(np.asarray(s[1], np.int64)), "pos": int(s[2]),
            "has_gauss": int(s[3]), "cached": float(s[4])}


def _np_state_from_plain(d):
    return (d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"])


def _py_state_to_plain(s):
    return {"version": s[0], "state": torch.tensor(s[1], dtype=torch.int64), "gauss": s[2]}


def _py_state_from_plain(d):
    return (d["version"], tuple(int(x) for x in d["state"].tolist()), d["gauss"])


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g).tolist()


def batches_of_epoch(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                     drop_last: bool = True) -> list[list[int]]:
    order = epoch_order(n, seed, epoch) if shuffle else list(range(n))
    out = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and out and len(out[-1]) < batch_size:
        out.pop()
    return out


# ---------------------------------------------------------------------------------------------- checkpoints
def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a training checkpoint (weights only; no code executed); errors name the file."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: training checkpoint not found")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{p}: not a readable emoca-edge training checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{p}: not an emoca-edge training checkpoint (format {ck.get('format') if isinstance(ck, dict) else None!r})")
    if int(ck.get("version", 0)) > CHECKPOINT_VERSION:
        raise ValueError(f"{p}: checkpoint version {ck['version']} is newer than this emoca-edge ({CHECKPOINT_VERSION})")
    ck["path"] = str(p)
    return ck


def build_stage(target: str, cfg: dict, data_dir, device: str):
    import importlib

    mod_name, cls_name = TARGETS[target]
    cls = getattr(importlib.import_module(mod_name), cls_name)
    return cls(cfg, data_dir, device)


class _Logger:
    def __init__(self, run: Path):
        self.file = open(run / "metrics.jsonl", "a", encoding="utf-8")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self.tb = SummaryWriter(str(run / "tensorboard"))
        except Exception:
            self.tb = None

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record, sort_keys=True) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{record.get('kind', 'train')}/{k}", v, record.get("step", 0))

    def close(self):
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class Trainer:
    """Runs ``target`` with ``cfg`` on ``data_dir``, writing the run folder ``out``.

    ``resume``: continue from ``out/checkpoints/last.pt`` (or the given checkpoint path). Without it
    an ``out`` that already holds checkpoints is refused. ``max_steps`` overrides ``train.max_steps``.
    """

    def __init__(self, target: str, cfg: dict, data_dir, out, *, device: str | None = None,
                 max_steps: int | None = None, resume=False, progress: bool = True):
        self.target, self.cfg = target, cfg
        self.data_dir = Path(data_dir)
        self.run = Path(out)
        self.progress = progress
        tcfg = cfg["train"]
        if max_steps is not None:
            tcfg["max_steps"] = int(max_steps)
        dev = device or tcfg.get("device") or "auto"
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {dev!r} requested but torch sees no CUDA device")
        self.device = dev
        ck_dir = self.run / "checkpoints"
        self.resume_from = None
        if resume:
            self.resume_from = Path(resume) if isinstance(resume, (str, os.PathLike)) else ck_dir / "last.pt"
            if not Path(self.resume_from).is_file():
                raise FileNotFoundError(f"{self.resume_from}: no checkpoint to resume from")
        elif ck_dir.is_dir() and any(ck_dir.glob("*.pt")):
            raise FileExistsError(f"{self.run} already holds checkpoints; pass --resume to continue or choose a new --out")

    def _optimizer(self, params):
        t = self.cfg["train"]
        name = t.get("optimizer", "adam").lower()
        if name == "adam":
            return torch.optim.Adam(params, lr=float(t["lr"]), weight_decay=float(t.get("weight_decay", 0.0)))
        if name == "adamw":
            return torch.optim.AdamW(params, lr=float(t["lr"]), weight_decay=float(t.get("weight_decay", 0.0)))
        if name == "sgd":
            return torch.optim.SGD(params, lr=float(t["lr"]), momentum=0.9, weight_decay=float(t.get("weight_decay", 0.0)))
        raise ConfigError(f"train.optimizer {name!r}: expected adam, adamw or sgd")

    def _loader(self, dataset, batches):
        from torch.utils.data import DataLoader

        from emoca_edge.training.data import collate_skip

        # Own generator: creating a loader iterator must not draw from the global RNG (resume parity).
        g = torch.Generator().manual_seed(int(self.cfg["train"].get("seed", 0)))
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_skip, generator=g,
                          num_workers=int(self.cfg["train"].get("num_workers", 0)))

    def save(self, stage, opt, step, epoch, batch_in_epoch, name: str | None = None) -> Path:
        ck_dir = self.run / "checkpoints"
        ck_dir.mkdir(parents=True, exist_ok=True)
        ck = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "target": self.target,
              "config": self.cfg, "step": int(step), "epoch": int(epoch), "batch_in_epoch": int(batch_in_epoch),
              "modules": {k: m.state_dict() for k, m in stage.modules().items()},
              "optimizer": opt.state_dict(), "rng": rng_state(), "extra": stage.extra_state()}
        path = ck_dir / (name or f"step_{step:07d}.pt")
        tmp = path.with_suffix(".tmp")
        torch.save(ck, tmp)
        os.replace(tmp, path)
        last = ck_dir / "last.pt"
        if path != last:
            tmp = last.with_suffix(".tmp")
            torch.save(ck, tmp)
            os.replace(tmp, last)
        return path

    def fit(self) -> dict:
        """Train; returns a summary (steps, final losses, last validation metrics, checkpoint path)."""
        t = self.cfg["train"]
        seed = int(t.get("seed", 0))
        self.run.mkdir(parents=True, exist_ok=True)
        ck = load_checkpoint(self.resume_from) if self.resume_from else None
        if ck is not None and ck["target"] != self.target:
            raise ValueError(f"{ck['path']}: checkpoint of target {ck['target']!r}, not {self.target!r}")
        seed_everything(seed)
        stage = build_stage(self.target, self.cfg, self.data_dir, self.device)
        train_ds, val_ds = stage.datasets()
        opt = self._optimizer(stage.trainable_parameters())
        step = epoch = batch_in_epoch = 0
        if ck is not None:
            for k, m in stage.modules().items():
                m.load_state_dict(ck["modules"][k])
            opt.load_state_dict(ck["optimizer"])
            step, epoch, batch_in_epoch = ck["step"], ck["epoch"], ck["batch_in_epoch"]
            set_rng_state(ck["rng"])
            log.info("resumed from %s at step %d", ck["path"], step)
        (self.run / "config.yaml").write_text(yaml.safe_dump(self.cfg, sort_keys=False), encoding="utf-8")
        logger = _Logger(self.run)
        max_steps = int(t.get("max_steps") or 0) or None
        epochs = int(t.get("epochs", 1))
        bs = int(t["batch_size"])
        every_ck = int(t.get("checkpoint_every", 1000))
        every_log = int(t.get("log_every", 10))
        every_val = int(t.get("validate_every", 0))
        min_batch = int(t.get("min_batch_size", 2))
        total = max_steps or epochs * max(1, len(train_ds) // bs)
        t0 = time.perf_counter()
        last_terms: dict = {}
        val_metrics: dict = {}
        done = False
        try:
            while not done and epoch < epochs:
                train_ds.set_epoch(epoch)
                batches = batches_of_epoch(len(train_ds), bs, seed, epoch, drop_last=bool(t.get("drop_last", True)))
                if not batches:
                    raise ValueError(f"training set has {len(train_ds)} samples, fewer than batch_size {bs}")
                for b_idx, batch in enumerate(self._loader(train_ds, batches[batch_in_epoch:]), start=batch_in_epoch):
                    if batch is None or len(batch["index"]) < min_batch:
                        # unreadable samples were dropped (and reported by the dataset); BatchNorm in
                        # training mode needs at least 2 samples
                        log.warning("skipping a batch with %d readable samples", 0 if batch is None else len(batch["index"]))
                        continue
                    stage.train_mode()
                    opt.zero_grad(set_to_none=True)
                    loss, terms = stage.training_step(stage.to_device(batch))
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"non-finite loss at step {step + 1}: {terms}")
                    loss.backward()
                    if t.get("grad_clip"):
                        torch.nn.utils.clip_grad_norm_(stage.trainable_parameters(), float(t["grad_clip"]))
                    opt.step()
                    step += 1
                    last_terms = {k: float(v.detach()) for k, v in terms.items()}
                    if step % every_log == 0 or step == 1:
                        logger.write({"kind": "train", "step": step, "epoch": epoch, "loss": float(loss.detach()),
                                      "lr": opt.param_groups[0]["lr"], "time_s": round(time.perf_counter() - t0, 3),
                                      **last_terms})
                    if self.progress:
                        self._progress(step, total, float(loss.detach()), t0)
                    at_end_of_epoch = b_idx + 1 == len(batches)
                    if step % every_ck == 0:
                        self.save(stage, opt, step, epoch + int(at_end_of_epoch), 0 if at_end_of_epoch else b_idx + 1)
                    if every_val and val_ds is not None and step % every_val == 0:
                        val_metrics = self._validate(stage, val_ds, logger, step, epoch)
                    if max_steps is not None and step >= max_steps:
                        done = True
                        batch_in_epoch = 0 if at_end_of_epoch else b_idx + 1
                        if at_end_of_epoch:
                            epoch += 1
                        break
                else:
                    epoch += 1
                    batch_in_epoch = 0
            path = self.save(stage, opt, step, epoch, batch_in_epoch)
            if val_ds is not None and t.get("validate_at_end", True):
                val_metrics = self._validate(stage, val_ds, logger, step, epoch)
        finally:
            logger.close()
            if self.progress:
                sys.stderr.write("\n")
        bad = {k: v for ds in (train_ds, val_ds) if ds is not None for k, v in ds.bad.items.items()}
        return {"steps": step, "epoch": epoch, "train": last_terms, "validation": val_metrics, "checkpoint": str(path),
                "skipped_images": bad, "stage": stage}

    def _validate(self, stage, val_ds, logger, step, epoch) -> dict:
        val_ds.set_epoch(0)
        bs = int(self.cfg["train"].get("val_batch_size", self.cfg["train"]["batch_size"]))
        n = len(val_ds)
        limit = min(n, int(self.cfg["train"].get("val_max_samples") or n))
        batches = [list(range(i, min(i + bs, limit))) for i in range(0, limit, bs)]
        stage.eval_mode()
        with torch.no_grad():
            metrics = stage.validate(stage.to_device(b) for b in self._loader(val_ds, batches) if b is not None)
        logger.write({"kind": "validation", "step": step, "epoch": epoch, **metrics})
        return metrics

    @staticmethod
    def _progress(step, total, loss, t0):
        el = time.perf_counter() - t0
        rate = step / el if el > 0 else 0.0
        frac = min(1.0, step / total) if total else 0.0
        fill = int(round(frac * 24))
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (24 - fill)}] step {step}/{total} loss {loss:.4g} "
                         f"{rate:.2f} it/s")
        sys.stderr.flush()
