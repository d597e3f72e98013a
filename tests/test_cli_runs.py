"""The command line as a demanding user drives it: outputs, locks, splits, ids, wording.

Each test is one point a user hit (work lost, wrong results, rough edges); every one fails
on the code before the fix. Data: small CSV files written here, shop-like ids included.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from lightgcn_sparse import experiment
from lightgcn_sparse.cli import main
from lightgcn_sparse.cli_options import friendly_errors
from lightgcn_sparse.reporting import RunLock

FAST = ["--epochs", "2", "--embedding-dim", "8", "--num-layers", "2", "--batch-size", "64",
        "--seed", "5", "--quiet"]  # fmt: skip


def shop_csv(path: Path, users: int = 30, items: int = 25, per_user: int = 6) -> Path:
    """A shop's interactions: user ids like 'u17', item ids like 'sku-9' (and 'SKU-1')."""
    rng = np.random.default_rng(3)
    names = [f"sku-{i}" for i in range(items - 1)] + ["SKU-1"]  # 'SKU-1' and 'sku-1' differ
    rows = [f"u{u},{names[i]}" for u in range(users)
            for i in rng.choice(items, per_user, replace=False)]  # fmt: skip
    path.write_text("user,item\n" + "\n".join(rows) + "\n")
    return path


def cli(*args: str, code: int | None = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    data = shop_csv(root / "shop.csv")
    out = root / "run"
    cli("train", "--dataset", data, "--out", out, "--checkpoint-every", "1", *FAST)
    return data, out


# 1. A bad --out or --metrics-json is found before training, not after it.
@pytest.mark.parametrize(
    "flag, where, words",
    [
        ("--out", "/proc/lightgcn-out", ["--out '/proc/lightgcn-out' cannot be created"]),
        ("--metrics-json", "{tmp}", ["Invalid value for '--metrics-json'", "is a directory"]),
        ("--metrics-json", "{tmp}/missing/m.json", ["does not exist"]),
        ("--metrics-json", "/proc/m.json", ["--metrics-json '/proc/m.json' cannot be written"]),
    ],
)
def test_bad_output_locations_fail_before_training(shop, tmp_path, flag, where, words):
    data, _ = shop
    where = where.format(tmp=tmp_path)
    args = ["train", "--dataset", data, *FAST]
    if flag == "--metrics-json":
        args += ["--out", tmp_path / "run"]
    result = cli(*args, flag, where, code=2 if where == str(tmp_path) else 1)
    for word in words:
        assert word in result.output, result.output
    assert "epoch" not in result.output and not (tmp_path / "run" / "model.npz").exists()


# 2. evaluate scores the split the model was trained on, or refuses.
def test_evaluate_uses_the_recorded_split_and_refuses_another(tmp_path):
    data = shop_csv(tmp_path / "shop.csv")
    out = tmp_path / "strat"
    cli("train", "--dataset", data, "--split", "stratified", "--out", out, *FAST)
    saved = json.loads((out / "metrics.json").read_text())
    same = cli("evaluate", "--model", out / "model.npz", "--metrics-json", tmp_path / "e.json")
    again = json.loads((tmp_path / "e.json").read_text())
    assert again["recall@20"] == saved["recall@20"] and "split stratified" in same.output
    # --dataset alone keeps the recorded split; another split or seed is refused.
    cli("evaluate", "--model", out / "model.npz", "--dataset", data)
    for extra in (["--split", "random"], ["--split-seed", "7"]):
        result = cli("evaluate", "--model", out / "model.npz", *extra, code=1)
        assert "was trained on another split:" in result.output
        assert "(trained with " in result.output


def test_shuffling_the_file_does_not_change_the_split(tmp_path):
    data = shop_csv(tmp_path / "shop.csv")
    lines = data.read_text().splitlines()
    body = lines[1:]
    np.random.default_rng(0).shuffle(body)
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join([lines[0], *body]) + "\n")
    parts = []
    for path in (data, shuffled):
        table, split = experiment.DataSpec(str(path)).load()
        parts.append({name: {(table.user_ids[u], table.item_ids[i])
                             for u, i in zip(part.users, part.items)}
                      for name, part in zip(("train", "valid", "test"), split)})  # fmt: skip
    assert parts[0] == parts[1]


# 7. / 10. Items by raw id (exact, case-sensitive), wording for data without titles.
def test_items_are_named_by_exact_raw_id_and_called_items(shop):
    data, out = shop
    model = ["--model", out / "model.npz"]
    result = cli("similar", *model, "--item", "sku-9", "-k", "3")
    assert result.output.startswith("Items similar to sku-9 (3):")
    upper = cli("similar", *model, "--item", "SKU-1", "-k", "3").output
    lower = cli("similar", *model, "--item", "sku-1", "-k", "3").output
    assert upper.splitlines()[0] != lower.splitlines()[0]  # two different items
    result = cli("similar", *model, "--item", "The sku-2", code=1)
    assert "No item has the id 'The sku-2' (ids are matched exactly)." in result.output
    assert "movie" not in result.output.lower()
    result = cli("recommend", *model, "--likes", "sku-3", "--likes", "id:sku-4", "-k", "2")
    assert "A new user who likes: sku-3; sku-4" in result.output


def test_top_k_says_how_many_it_lists(shop):
    data, out = shop
    result = cli("recommend", "--model", out / "model.npz", "--user", "u1", "-k", "25")
    lines = result.output.splitlines()
    rows = lines[lines.index("rank") + 1 :] if "rank" in lines else lines[3:]
    assert result.output.startswith(f"Top {len(rows)} items for user u1")
    assert len(rows) < 25  # the user's training items are not listed


# 8. --epochs 0, and a resume that would train nothing, are refused.
def test_epochs_zero_and_a_shorter_resume_are_refused(shop, tmp_path):
    data, out = shop
    result = cli("train", "--dataset", data, "--out", tmp_path / "r", *FAST, "--epochs", "0",
                 code=2)  # fmt: skip
    assert "Invalid value for '--epochs': must be at least 1" in result.output
    result = cli("train", "--dataset", data, "--out", tmp_path / "r", *FAST, "--epochs", "1",
                 "--resume", out / "checkpoint.npz", code=2)  # fmt: skip
    assert "the checkpoint has already trained 2 epochs" in result.output


# 9. Two identical runs write identical files (timings apart).
def test_identical_runs_write_identical_files(tmp_path):
    data = shop_csv(tmp_path / "shop.csv")
    for name in ("a", "b"):
        cli("train", "--dataset", data, "--out", tmp_path / name, *FAST)
    for file in ("model.npz", "metrics.json", "history.csv", "history.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    timings = json.loads((tmp_path / "a" / "timings.json").read_text())
    assert len(timings["epochs"]) == 2 and timings["train_seconds"] > 0


# 11. Rough edges: Ctrl-C, a closed pipe, help on every option.
def test_ctrl_c_says_how_to_resume(shop, tmp_path, monkeypatch):
    data, _ = shop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lightgcn_sparse.cli.train", interrupted)
    result = cli("train", "--dataset", data, "--out", tmp_path / "r", *FAST, code=130)
    assert "interrupted before any checkpoint was written" in result.output
    assert "--checkpoint-every" in result.output and "Aborted" not in result.output


def test_a_closed_pipe_ends_quietly():
    @click.command()
    @friendly_errors
    def talk():
        raise BrokenPipeError(32, "Broken pipe")

    result = CliRunner().invoke(talk, [])
    assert result.exit_code == 0 and "Error" not in result.output


@pytest.mark.parametrize("command", ["train", "evaluate", "recommend", "similar", "info"])
def test_every_option_has_help(command):
    for param in main.commands[command].params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help and len(param.help) > 12, (command, param.name)
    assert "Config.reg" not in CliRunner().invoke(main, [command, "--help"]).output


# 12. Two runs into one --out: the second is refused.
def test_a_second_run_into_the_same_folder_is_refused(shop, tmp_path):
    data, _ = shop
    out = tmp_path / "busy"
    with RunLock(out):
        result = cli("train", "--dataset", data, "--out", out, *FAST, code=1)
    assert f"another run is writing into {str(out)!r}" in result.output
    cli("train", "--dataset", data, "--out", out, *FAST)  # free again afterwards


# 13. A fresh run into a folder holding an earlier run is refused unless --overwrite.
def test_an_earlier_run_is_not_replaced_without_overwrite(shop, tmp_path):
    data, out = shop
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = cli("train", "--dataset", data, "--out", out, *FAST, code=1)
    assert f"--out {str(out)!r} already holds a run (model.npz, checkpoint.npz)" in result.output
    assert f"continue it with --resume {out / 'checkpoint.npz'}" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.npz").write_bytes(before["model.npz"])
    result = cli("train", "--dataset", data, "--out", copy, *FAST, code=1)
    assert "pass --overwrite to replace it" in result.output and "--resume" not in result.output
    cli("train", "--dataset", data, "--out", copy, *FAST, "--overwrite")
    assert (copy / "metrics.json").exists()


# 14. Ctrl-C in the final evaluation keeps the trained model; Ctrl-C while loading exits
# 130 like Ctrl-C in training; a failed run leaves no empty folder behind.
def test_ctrl_c_after_training_keeps_the_model(shop, tmp_path, monkeypatch):
    data, _ = shop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("lightgcn_sparse.cli.finish_training", interrupted)
    out = tmp_path / "r"
    result = cli("train", "--dataset", data, "--out", out, *FAST, code=130)
    assert "interrupted during the test evaluation. The trained model is saved in" in result.output
    assert f"lightgcn-sparse evaluate --model {out / 'model.npz'}" in result.output
    assert {"model.npz", "history.csv"} <= {p.name for p in out.iterdir()}
    assert not (out / "metrics.json").exists()
    monkeypatch.undo()
    cli("evaluate", "--model", out / "model.npz")
    monkeypatch.setattr("lightgcn_sparse.experiment.DataSpec.load", interrupted)
    result = cli("train", "--dataset", data, "--out", tmp_path / "loading", *FAST, code=130)
    assert result.output.strip() == "Error: interrupted." and "Aborted" not in result.output
    assert not (tmp_path / "loading").exists()


def test_a_failed_run_leaves_no_folder_it_made(tmp_path):
    result = cli("train", "--dataset", tmp_path / "none.csv", "--out", tmp_path / "new", *FAST,
                 code=1)  # fmt: skip
    assert "neither a known" in result.output and not (tmp_path / "new").exists()


# 15. A resumed run keeps writing checkpoints, says where it resumes, and a closed pipe
# (a pager quit, `| head`) does not end training before the model is saved.
def test_a_resumed_run_keeps_checkpointing_and_says_so(shop, tmp_path):
    data, out = shop
    run = tmp_path / "again"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes((out / "checkpoint.npz").read_bytes())
    args = ["train", "--dataset", data, "--out", run, *FAST[:-1], "--epochs", "4",
            "--eval-every", "1", "--resume", run / "checkpoint.npz"]  # fmt: skip
    result = cli(*args)
    assert f"resuming {run / 'checkpoint.npz'} after epoch 2" in result.output
    assert "checkpoints every 1 epochs (--eval-every)" in result.output
    from lightgcn_sparse.checkpoint import from_json_array, read_npz

    state = read_npz(run / "checkpoint.npz")["train_state"]
    assert from_json_array(state, "c", "train_state")["epoch"] == 4


def test_a_closed_pipe_does_not_lose_the_training_run(tmp_path):
    import subprocess
    import sys

    data = shop_csv(tmp_path / "shop.csv")
    out = tmp_path / "piped"
    args = [sys.executable, "-m", "lightgcn_sparse.cli", "train", "--dataset", str(data),
            "--out", str(out), *FAST[:-1], "--epochs", "6"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = proc.stdout.readline()  # the first progress line; then the reader goes
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0 and first
    assert (out / "model.npz").exists() and (out / "metrics.json").exists()


# 16. A catalogue under 20 items trains with the default validation cutoffs (10, 20);
# evaluate's --metrics-json errors name --metrics-json.
def test_a_small_catalogue_and_metrics_json_errors(tmp_path):
    data = shop_csv(tmp_path / "small.csv", users=20, items=15, per_user=5)
    out = tmp_path / "small"
    cli("train", "--dataset", data, "--out", out, *FAST, "-k", "5", "--metric", "ndcg@5")
    result = cli("train", "--dataset", data, "--out", tmp_path / "s2", *FAST, "-k", "5",
                 "--metric", "ndcg@16", code=2)  # fmt: skip
    assert "Invalid value for '--metric'" in result.output
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("evaluate", "--model", out / "model.npz", "-k", "5",
                 "--metrics-json", blocker / "m.json", code=1)  # fmt: skip
    target = blocker / "m.json"
    assert f"--metrics-json {str(target)!r}: {str(blocker)!r} is a file" in result.output
    assert "--out" not in result.output


# 17. A yes/no setting is a flag pair; unset, the preset's value stays.
@pytest.mark.parametrize(
    "args, expected",
    [([], False), (["--layer-norm"], True), (["--preset", "lightgcnpp"], True),
     (["--preset", "lightgcnpp", "--no-layer-norm"], False)],
)  # fmt: skip
def test_layer_norm_is_a_flag(shop, tmp_path, args, expected):
    data, _ = shop
    out = tmp_path / "ln"
    cli("train", "--dataset", data, "--out", out, *FAST, "--epochs", "1", *args)
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["layer_norm"] is expected


def copy_run(src: Path, dst: Path) -> Path:
    """A folder holding ``src``'s model.npz and checkpoint.npz (a run to be replaced)."""
    dst.mkdir()
    for name in ("model.npz", "checkpoint.npz"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


# 18. --overwrite: the replaced run's checkpoint is never offered as this run's, is kept if
# this run fails, and goes once this run's model is written.
def test_overwrite_never_offers_the_replaced_runs_checkpoint(shop, tmp_path, monkeypatch):
    data, out = shop
    run = copy_run(out, tmp_path / "run")
    old = (run / "checkpoint.npz").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr("lightgcn_sparse.cli.train", interrupt)
        result = cli("train", "--dataset", data, "--out", run, *FAST, "--overwrite", code=130)
    assert "interrupted before any checkpoint was written" in result.output
    assert (run / "checkpoint.npz").read_bytes() == old  # a failed run loses nothing
    cli("train", "--dataset", data, "--out", run, *FAST, "--overwrite", "--seed", "9")
    assert not (run / "checkpoint.npz").exists()
    assert (run / "model.npz").read_bytes() != (out / "model.npz").read_bytes()
    cli("train", "--dataset", data, "--out", run, *FAST, code=1)  # a finished run now


# 19. Resuming another folder's checkpoint into a folder holding a run is the same as a new
# run there: refused without --overwrite, and Ctrl-C offers the checkpoint it resumed.
def test_resuming_another_folders_checkpoint_guards_the_out_folder(shop, tmp_path, monkeypatch):
    data, out = shop
    finished = copy_run(out, tmp_path / "finished")
    resume = ["--resume", out / "checkpoint.npz", "--epochs", "3"]
    result = cli("train", "--dataset", data, "--out", finished, *FAST, *resume, code=1)
    assert "already holds a run (model.npz, checkpoint.npz)" in result.output
    monkeypatch.setattr("lightgcn_sparse.cli.train", interrupt)
    fresh = tmp_path / "fresh"
    result = cli("train", "--dataset", data, "--out", fresh, *FAST, *resume, code=130)
    assert f"Continue from the one it resumed with the same options and --resume {out}" in (
        result.output.replace("\n", " ")
    )
    result = cli("train", "--dataset", data, "--out", finished, *FAST, *resume, "--overwrite",
                 code=130)  # fmt: skip
    assert f"--resume {finished}" not in result.output  # not the replaced run's checkpoint


# 20. --checkpoint-every 0 means never, also when resuming; -k left at its defaults fits a
# small catalogue; a failed run removes every folder it made, and a bad --metrics-json
# makes none.
def test_explicit_zero_checkpoints_default_cutoffs_and_nested_folders(shop, tmp_path):
    data, out = shop
    run = tmp_path / "never"
    cli("train", "--dataset", data, "--out", run, *FAST, "--epochs", "3", "--checkpoint-every",
        "0", "--resume", out / "checkpoint.npz")  # fmt: skip
    assert not (run / "checkpoint.npz").exists()
    small = shop_csv(tmp_path / "small.csv", users=20, items=15, per_user=5)
    result = cli("train", "--dataset", small, "--out", tmp_path / "s", *FAST[:-1],
                 "--metric", "ndcg@5")  # fmt: skip
    assert "Recall@10" in result.output and "Recall@20" not in result.output
    cli("train", "--dataset", tmp_path / "none.csv", "--out", tmp_path / "a" / "b" / "c", *FAST,
        code=1)  # fmt: skip
    assert not (tmp_path / "a").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cli("train", "--dataset", data, "--out", tmp_path / "m", *FAST, "--metrics-json",
        blocker / "m.json", code=1)  # fmt: skip
    assert not (tmp_path / "m").exists()


# 21. --metrics-json may lie inside the new --out; "a/../b" and an existing folder keep
# nothing a failed run made (its .lock either); the preset's metric fits a small catalogue.
def test_output_edge_cases_and_the_default_metric(shop, tmp_path):
    data, _ = shop
    cli("train", "--dataset", data, "--out", tmp_path / "mj", *FAST, "--metrics-json",
        tmp_path / "mj" / "m.json")  # fmt: skip
    assert (tmp_path / "mj" / "m.json").exists()
    cli("train", "--dataset", tmp_path / "none.csv", "--out", tmp_path / "x" / ".." / "y" / "z",
        *FAST, code=1)  # fmt: skip
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    cli("train", "--dataset", data, "--out", tmp_path / "x" / ".." / "y", *FAST)
    assert (tmp_path / "y" / "model.npz").exists() and not (tmp_path / "x").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    cli("train", "--dataset", tmp_path / "none.csv", "--out", existing, *FAST, code=1)
    assert existing.is_dir() and list(existing.iterdir()) == []
    small = shop_csv(tmp_path / "small.csv", users=20, items=15, per_user=5)
    cli("train", "--dataset", small, "--out", tmp_path / "s", *FAST)  # ndcg@20 -> ndcg@10
    config = json.loads((tmp_path / "s" / "metrics.json").read_text())["config"]
    assert config["metric"] == "ndcg@10" and config["ks"] == [10]


def test_the_torchrun_entry_guards_its_run_like_train(shop, tmp_path):
    from lightgcn_sparse.train import main as train_main

    data, out = shop

    def run(*args, code):
        result = CliRunner().invoke(train_main, [str(a) for a in args])
        assert result.exit_code == code, result.output
        return result

    run("--dataset", tmp_path / "none.csv", "--out", tmp_path / "a" / "b", *FAST, code=1)
    assert not (tmp_path / "a").exists()
    result = run("--dataset", data, "--out", tmp_path / "r", *FAST, "--epochs", "1", "--resume",
                 out / "checkpoint.npz", code=2)  # fmt: skip
    assert "the checkpoint has already trained 2 epochs" in result.output
    assert "already holds a run" in run("--dataset", data, "--out", out, *FAST, code=1).output
    for extra in (["--split", "random"], []):  # refused before loading, and after it
        result = run("--dataset", data, "--out", tmp_path / "v", *FAST, *extra,
                     "--valid-fraction", "0.3", code=2)  # fmt: skip
        assert "Invalid value for '--valid-fraction'" in result.output
        assert not (tmp_path / "v").exists()


# --valid-fraction where the split does not use it was recorded and silently ignored.
def _folder(root: Path, parts: tuple[str, ...]) -> Path:
    """A benchmark folder (train.txt / test.txt, and valid.txt if asked): 20 users."""
    rng = np.random.default_rng(4)
    lines: dict[str, list[str]] = {part: [] for part in parts}
    for u in range(20):
        items = rng.choice(30, 3 + 2 * len(parts), replace=False)
        for k, part in enumerate(parts):
            chosen = items[:-2 * (len(parts) - 1)] if k == 0 else items[-2 * k:][:2]
            lines[part].append(" ".join(map(str, [u, *chosen])))
    root.mkdir()
    for part, text in lines.items():
        (root / f"{part}.txt").write_text("\n".join(text) + "\n")
    return root


@pytest.mark.parametrize(
    "data, extra, why",
    [
        ("csv", ["--split", "random"], "the 'random' split holds out its own validation part"),
        ("csv", [], "the 'random' split holds out its own validation part"),  # the default
        ("folder", ["--protocol", "paper"], "--protocol paper trains on all of the training"),
        ("folder3", [], "ships its own validation part"),
    ],
)
def test_an_unused_valid_fraction_is_refused(tmp_path, data, extra, why):
    makers = {"csv": lambda: shop_csv(tmp_path / "shop.csv"),
              "folder": lambda: _folder(tmp_path / "bench", ("train", "test")),
              "folder3": lambda: _folder(tmp_path / "bench3", ("train", "valid", "test"))}
    path = makers[data]()
    for command in (["train", "--out", tmp_path / "run", *FAST], ["info"]):
        result = cli(*command, "--dataset", path, *extra, "--valid-fraction", "0.3", code=2)
        assert "Invalid value for '--valid-fraction'" in result.output and why in result.output
        assert not (tmp_path / "run").exists()


def test_valid_fraction_is_used_by_the_given_split_without_a_validation_file(tmp_path):
    path = _folder(tmp_path / "bench", ("train", "test"))
    shares = []
    for fraction in ("0.0", "0.5"):
        result = cli("info", "--dataset", path, "--valid-fraction", fraction)
        line = next(x for x in result.output.splitlines() if "split given" in x)
        shares.append(int(line.split("valid ")[1].split(" /")[0].replace(",", "")))
    assert shares[0] == 0 < shares[1]
    for protocol in ("honest", "refit"):  # both hold validation out of train: accepted
        cli("train", "--dataset", path, "--out", tmp_path / protocol, "--protocol", protocol,
            "--valid-fraction", "0.4", *FAST)  # fmt: skip
    model = tmp_path / "honest" / "model.npz"
    cli("evaluate", "--model", model, "--valid-fraction", "0.4")  # the recorded value
    result = cli("evaluate", "--model", model, "--valid-fraction", "0.2", code=1)
    assert "trained on another split: valid_fraction=0.2 (trained with 0.4)" in result.output


def test_saved_models_refuse_an_unused_valid_fraction_like_train(shop, tmp_path):
    """evaluate / recommend / similar replace recorded data options with the ones given; a
    --valid-fraction that the recorded random split ignores is refused as train refuses it
    (it used to report "trained on another split", which it was not)."""
    _, out = shop
    model = out / "model.npz"
    for command in (["evaluate"], ["recommend", "--user", "u3"], ["similar", "--item", "sku-2"]):
        result = cli(*command, "--model", model, "--valid-fraction", "0.3", code=2)
        assert "Invalid value for '--valid-fraction'" in result.output
        assert "the 'random' split holds out its own validation part" in result.output
