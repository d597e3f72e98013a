"""Resumable training checkpoints: what a run depends on, written and read back checked.

A checkpoint is a saved model (:meth:`LightGCN.model_arrays`) plus:

* ``train_state``: JSON with the early-stopping state, the history and timings, the
  optimizer's plain state and param groups, the scheduler, the generator's device, and the
  fingerprint of the validation data;
* ``best_embedding``: the parameters of the best validation epoch so far;
* ``rng_state``: the sampling generator's state;
* ``optim_<key>``: each tensor of the optimizer state of the (single) parameter, e.g.
  ``optim_exp_avg``, ``optim_exp_avg_sq``, ``optim_step`` for Adam (``optim<k>_<key>`` for
  parameter ``k > 0``).

The optimizer state is stored as ``torch.optim.Optimizer.state_dict`` gives it, so any
optimizer can be checkpointed; nothing here knows Adam's layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .checkpoint import CheckpointError, from_json_array, read_npz, to_json_array
from .config import Config
from .persistence import float_array, shape_field

#: Config fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = ("epochs", "device", "extra", "cuda_graph")


def _tensor_key(index: int, key: str) -> str:
    return f"optim_{key}" if index == 0 else f"optim{index}_{key}"


def training_arrays(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    state: dict[str, Any],
    best: list[torch.Tensor],
    valid_fp: str,
) -> dict[str, Any]:
    """The arrays of a checkpoint (see the module docstring)."""
    opt_state = optimizer.state_dict()
    tensors: dict[str, np.ndarray] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in opt_state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[_tensor_key(index, key)] = value.detach().cpu().numpy()
            else:
                plain.setdefault(str(index), {})[key] = value
    if len(best) != 1:
        raise ValueError("checkpoints hold models with one parameter tensor.")
    train_state = {
        **state,
        "history": model.history_,
        "timings": getattr(model, "timings_", []),
        "optimizer": {
            "param_groups": opt_state["param_groups"],
            "state": plain.get("0", {}),
            "states": plain,
            "tensors": sorted(tensors),
        },
        "scheduler": scheduler.state_dict(),
        "generator_device": generator.device.type,
        "validation": valid_fp,
    }
    arrays = model.model_arrays()
    arrays.update(
        train_state=to_json_array(train_state),
        best_embedding=best[0].detach().cpu().numpy(),
        rng_state=generator.get_state().cpu().numpy(),
        **tensors,
    )
    return arrays


def read_training_state(
    path: Any,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    valid_fp: str,
) -> tuple[dict[str, Any], list[torch.Tensor]]:
    """Load a checkpoint into a run that was just set up; return (state, best parameters)."""
    where = repr(str(path))
    data = read_npz(path, ("embedding", "config", "shape"))
    if "train_state" not in data:
        raise CheckpointError(
            f"{where} is a saved model, not a training checkpoint; resume from the "
            "checkpoint that training writes with checkpoint_every (--checkpoint-every)."
        )
    missing = [k for k in ("fingerprint", "rng_state", "best_embedding") if k not in data]
    if missing:
        raise CheckpointError(f"{where} lacks the field(s) {missing}.")
    check_compatible(data, path, model)
    saved = from_json_array(data["train_state"], path, "train_state")
    params = model.parameters()
    shape = tuple(params[0].shape)
    try:
        if saved.get("validation", "") != valid_fp:
            raise CheckpointError(
                f"{where} was trained with other validation data "
                f"({saved.get('validation') or 'none'}); this run has {valid_fp or 'none'}. "
                "Resume with the same data and split."
            )
        if saved["generator_device"] != generator.device.type:
            raise CheckpointError(
                f"{where} was written on {saved['generator_device']}; its random state "
                f"cannot continue on {generator.device.type}. Resume on the same device type."
            )
        emb = float_array(data["embedding"], shape, where, "embedding")
        best = float_array(data["best_embedding"], shape, where, "best_embedding")
        opt_saved = saved["optimizer"]
        plain = opt_saved.get("states", {"0": opt_saved.get("state", {})})
        states: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain.items()}
        for name in opt_saved["tensors"]:
            arr = data[name]
            index = 0 if name.startswith("optim_") else int(name[5:].split("_", 1)[0])
            key = name.split("_", 1)[1]
            if arr.ndim and arr.shape != tuple(params[index].shape):
                raise CheckpointError(f"{where}: {name} has shape {arr.shape}, not {shape}.")
            states.setdefault(index, {})[key] = torch.from_numpy(np.array(arr))
        rng = data["rng_state"]
        if rng.dtype != np.uint8 or rng.ndim != 1:
            raise CheckpointError(f"{where}: rng_state is not a generator state.")
        state = {
            "epoch": int(saved["epoch"]),
            "best_score": float(saved["best_score"]),
            "best_epoch": int(saved["best_epoch"]),
            "bad_evals": int(saved["bad_evals"]),
            "stopped": bool(saved.get("stopped", False)),
        }
        history = list(saved["history"])
        timings = list(saved.get("timings", []))
        with torch.no_grad():
            params[0].copy_(torch.from_numpy(emb))
        optimizer.load_state_dict({"state": states, "param_groups": opt_saved["param_groups"]})
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(torch.from_numpy(np.array(rng)))
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{where}: the training state is incomplete or malformed "
            f"({type(err).__name__}: {err})."
        ) from err
    model.history_ = [{k: v for k, v in r.items() if k != "time"} for r in history]
    model.timings_ = timings or [
        {"epoch": r.get("epoch"), "seconds": r["time"]} for r in history if "time" in r
    ]
    model.parameters_changed()
    return state, [torch.from_numpy(best).to(params[0].device)]


def read_config(path: Any) -> dict[str, Any]:
    """The config a checkpoint or saved model records, as a dict (``{}`` where the file
    has none or cannot be read: loading it for real says what is wrong)."""
    try:
        raw = from_json_array(read_npz(path)["config"], path, "config")
    except (CheckpointError, KeyError, OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def check_compatible(data: dict, path: Any, model: Any) -> None:
    """A resumed checkpoint must come from the same data and hyperparameters."""
    raw = from_json_array(data["config"], path, "config")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{str(path)!r}: field 'config' is not a JSON object.")
    try:  # fields added since the checkpoint was written take their defaults
        saved_cfg = Config.from_dict(raw).to_dict()
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{str(path)!r}: its config cannot be used ({err}).") from err
    mine = model.config.to_dict()
    differ = sorted(
        k for k in set(mine) | set(saved_cfg)
        if k not in RESUMABLE_CHANGES and saved_cfg.get(k) != mine.get(k)
    )  # fmt: skip
    if differ:
        shown = ", ".join(f"{k}={saved_cfg.get(k)!r} (now {mine.get(k)!r})" for k in differ)
        raise CheckpointError(
            f"{str(path)!r} was written with different settings: {shown}. Resume with "
            "the same configuration, or start a new run."
        )
    shape = shape_field(data, repr(str(path)))
    theirs = str(data.get("fingerprint", ""))
    if shape != (model.trained_users_, model.trained_items_) or theirs != model.fingerprint_:
        raise CheckpointError(
            f"{str(path)!r} was trained on other data ({shape[0]} users x {shape[1]} "
            f"items, {theirs}); this run has {model.trained_users_} x {model.trained_items_}, "
            f"{model.fingerprint_}. Resume with the same data and split."
        )
