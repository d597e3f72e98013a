"""The click options the benchmarks share, one decorator per group."""

from __future__ import annotations

from typing import Callable

import click


def _stack(*options: Callable) -> Callable[[Callable], Callable]:
    """Apply ``options`` so that ``--help`` lists them in the order given."""

    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def run_options(seed: int = 0) -> Callable[[Callable], Callable]:
    """--device, --threads, --seed, --json: where and how every benchmark runs."""
    return _stack(
        click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:i]."),
        click.option("--threads", type=int, default=None,
                     help="torch.set_num_threads (default: all)."),
        click.option("--seed", type=int, default=seed, show_default=True),
        click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                     help="Write the results here as JSON."),
    )  # fmt: skip


def graph_options(edges: tuple[int, ...], shapes: bool = True) -> Callable:
    """--edges (and --users/--items when ``shapes``), --ml100k, --real: the graphs to run."""
    options = [
        click.option("--edges", type=int, multiple=True, default=edges, show_default=True,
                     help="Edges of each synthetic power-law graph (repeat the option; "
                     "0 alone: none)."),
    ]  # fmt: skip
    if shapes:
        options += [
            click.option("--users", type=int, multiple=True,
                         help="Users per graph (default E/20)."),
            click.option("--items", type=int, multiple=True,
                         help="Items per graph (default E/100)."),
        ]  # fmt: skip
    options += [
        click.option("--ml100k/--no-ml100k", default=True, show_default=True,
                     help="Include ml-100k."),
        click.option("--real/--synthetic", default=True, show_default=True,
                     help="ml-100k from the package's loader (cache or recbole's copy, no "
                     "download), or always the synthetic stand-in."),
    ]  # fmt: skip
    return _stack(*options)


def model_options(func: Callable) -> Callable:
    """--dim, --layers: the propagation's width and depth."""
    return _stack(
        click.option("--dim", type=click.IntRange(1), default=64, show_default=True),
        click.option("--layers", type=click.IntRange(1), default=3, show_default=True),
    )(func)


def min_run_time_option(func: Callable) -> Callable:
    return click.option(
        "--min-run-time", type=click.FloatRange(0.0), default=1.0, show_default=True,
        help="Seconds per blocked_autorange measurement.",
    )(func)  # fmt: skip
