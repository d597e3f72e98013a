"""Data-parallel training: ``torchrun --nproc_per_node N -m lightgcn_sparse.train [OPTIONS]``.

Takes the same data and configuration options as ``lightgcn-sparse train`` (it reuses
:func:`lightgcn_sparse.cli.data_options` and :func:`~lightgcn_sparse.cli.config_options`)
and trains with the :class:`~lightgcn_sparse.distributed.DataParallel` strategy through
:func:`lightgcn_sparse.experiment.train`. ``--batch-size`` is the global batch, split over
the ranks. Rank 0 alone prints and writes files (``model.npz``, history, metrics,
checkpoints). ``gloo`` is used on CPU and ``nccl`` on CUDA (``--device cuda`` trains on
``cuda:LOCAL_RANK``). Run without ``torchrun`` it trains as a single process.

One machine, 4 processes::

    torchrun --standalone --nproc_per_node 4 -m lightgcn_sparse.train --dataset ml-100k

Two machines (run on each, with ``--node_rank`` 0 and 1)::

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 \\
        --rdzv_backend c10d --rdzv_endpoint HOST0:29500 -m lightgcn_sparse.train ...
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

import click
import torch.distributed as dist

from . import experiment
from .cli import (
    _check_resume,
    _interrupted,
    announce_resume,
    report_cutoffs,
    report_training,
    resumed_checkpoints,
    validation_cutoffs,
)
from .cli_options import (
    check_valid_fraction,
    config_of,
    friendly_errors,
    spec_of,
    survive_closed_pipes,
    train_options,
)
from .distributed import DataParallel, init_distributed
from .reporting import RunLock, check_outputs, drop_replaced_checkpoint


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@train_options
@click.option(
    "--backend",
    type=click.Choice(["auto", "gloo", "nccl"]),
    default="auto",
    show_default=True,
    help="auto: gloo on CPU, nccl on CUDA.",
)
@friendly_errors
def main(preset_name, alpha, out, metrics_json, checkpoint_every, resume, overwrite, ks, quiet,
         backend, **options):  # fmt: skip
    """Train LightGCN data-parallel over the processes started by torchrun."""
    survive_closed_pipes()
    spec = spec_of(options)
    check_valid_fraction(spec)
    cfg = config_of(preset_name, alpha, options)
    device = init_distributed(cfg.device, None if backend == "auto" else backend)
    try:
        with contextlib.ExitStack() as stack:
            _train(stack, spec, cfg, device, out, metrics_json, checkpoint_every, resume,
                   overwrite, ks, quiet, options)  # fmt: skip
    finally:
        dist.destroy_process_group()


def _train(stack, spec, cfg, device, out, metrics_json, checkpoint_every, resume, overwrite,
           ks, quiet, options) -> None:  # fmt: skip
    """The run itself, as ``lightgcn-sparse train`` does it; rank 0 checks, locks and
    writes ``out`` (a failed run removes what it made), every rank trains."""
    cfg = cfg.replace(device=str(device))
    rank = dist.get_rank()
    show = rank == 0 and not quiet
    out = Path(os.path.normpath(out))  # "a/../b" as the folders made for it
    started = time.time()
    if rank == 0:
        stack.enter_context(RunLock(out, check_outputs(out, metrics_json, resume, overwrite)))
    done = None
    if resume is not None and spec.protocol != "refit":  # every rank: all refuse alike
        done = _check_resume(resume, cfg)
    checkpoint_every = resumed_checkpoints(resume, checkpoint_every, cfg, not show)
    # The first process of each machine loads (and if need be downloads) the data first,
    # so that the others find it in the cache instead of downloading it concurrently.
    no_download = options["no_download"]
    local_first = os.environ.get("LOCAL_RANK", "0") == "0"
    loaded = spec.load(download=not no_download) if local_first else None
    dist.barrier()
    if loaded is None:
        loaded = spec.load(download=not no_download)
    data, split = loaded
    check_valid_fraction(spec, data)  # every rank: all refuse alike
    ks = report_cutoffs(ks, data.num_items)
    cfg = validation_cutoffs(cfg, data.num_items, options.get("metric") is not None)
    if show:
        click.echo(
            f"{data!r}: train {split.train.num_interactions}, valid "
            f"{split.valid.num_interactions}, test {split.test.num_interactions}; "
            f"{dist.get_world_size()} process(es), {dist.get_backend()} on {device}",
            err=True,
        )
        announce_resume(resume, done)
    strategy = DataParallel()
    with warnings.catch_warnings():
        if rank != 0:  # rank 0 speaks for all
            warnings.simplefilter("ignore")
        try:
            model, data, split = experiment.train(
                spec, cfg, show_progress=show, checkpoint_path=out / "checkpoint.npz",
                checkpoint_every=checkpoint_every, resume=resume, data=loaded,
                strategy=strategy,
            )  # fmt: skip
        except KeyboardInterrupt:
            raise _interrupted(out, checkpoint_every, started, resume) from None
    if rank == 0:
        extra = {"world_size": strategy.world_size}
        resolved = spec.resolved(data)
        report_training(model, split, resolved, out, ks, metrics_json, extra, quiet=quiet)
        drop_replaced_checkpoint(out, started, resume)
    dist.barrier()  # the others leave the group only once rank 0 has written everything


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
