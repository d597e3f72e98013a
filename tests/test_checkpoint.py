"""Model and checkpoint files: atomic writes, and safe, strict reads of anything else.

Loading must never run code from a file (no unpickling), and a file that is truncated,
corrupt, from another version, from another dataset or not a checkpoint at all must fail
with a :class:`CheckpointError` naming the file, through the API and the CLI alike.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lightgcn_sparse import checkpoint
from lightgcn_sparse.checkpoint import (
    VERSION,
    CheckpointError,
    atomic_write_npz,
    atomic_write_text,
    read_npz,
)
from lightgcn_sparse.cli import main
from lightgcn_sparse.model import LightGCN


def small_matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(3)
    return sp.csr_matrix((rng.random((20, 15)) < 0.3).astype(np.float32))


@pytest.fixture(scope="module")
def model() -> LightGCN:
    return LightGCN(embedding_dim=4, epochs=2, batch_size=16).fit(
        small_matrix(), show_progress=False
    )


@pytest.fixture
def saved(model, tmp_path) -> Path:
    return model.save(tmp_path / "model.npz")


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


class Evil:
    """Unpickling this creates ``marker``: proof that code from a file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


# ------------------------------------------------------------------ atomic writes


def _half_written_savez(fh, arrays=None):
    fh.write(b"PK\x03\x04 half of an archive")
    raise OSError(28, "No space left on device")


def _interrupted_savez(fh, arrays=None):
    fh.write(b"PK\x03\x04")
    raise KeyboardInterrupt


@pytest.mark.parametrize("failing", [_half_written_savez, _interrupted_savez])
def test_failed_write_leaves_the_old_file_and_no_temp_file(saved, monkeypatch, failing):
    before = saved.read_bytes()
    monkeypatch.setattr(checkpoint, "_write_npz", failing)
    with pytest.raises((OSError, KeyboardInterrupt)):
        atomic_write_npz(saved, {"embedding": np.zeros((2, 2))})
    assert saved.read_bytes() == before
    assert temp_files(saved.parent) == []
    monkeypatch.undo()
    assert LightGCN.load(saved).num_items == 15


def test_failed_model_save_keeps_the_previous_model(model, saved, monkeypatch):
    before = saved.read_bytes()
    monkeypatch.setattr(checkpoint, "_write_npz", _half_written_savez)
    with pytest.raises(OSError, match="No space left"):
        model.save(saved)
    assert saved.read_bytes() == before and temp_files(saved.parent) == []


def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    writes = []
    real = checkpoint._write_npz

    def second_write_fails(fh, arrays):
        writes.append(int(json.loads(str(arrays["train_state"]))["epoch"]))
        if len(writes) == 2:
            return _half_written_savez(fh)
        return real(fh, arrays)

    monkeypatch.setattr(checkpoint, "_write_npz", second_write_fails)
    with pytest.raises(OSError):
        LightGCN(embedding_dim=4, epochs=4, batch_size=16).fit(
            small_matrix(), show_progress=False, checkpoint_path=path, checkpoint_every=1
        )
    assert writes == [1, 2]
    assert json.loads(str(arrays_of(path)["train_state"]))["epoch"] == 1
    assert temp_files(tmp_path) == []


def test_write_does_not_append_a_suffix_and_keeps_permissions(model, tmp_path):
    plain = model.save(tmp_path / "model")
    assert plain == tmp_path / "model" and plain.is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0o600
    plain.chmod(0o640)
    model.save(plain)
    assert stat.S_IMODE(plain.stat().st_mode) == 0o640


def test_write_refuses_object_arrays_and_directories(tmp_path):
    with pytest.raises(TypeError, match="'bad' is an object array"):
        atomic_write_npz(tmp_path / "x.npz", {"bad": np.array([{}, 1], dtype=object)})
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_write_npz(tmp_path, {"a": np.zeros(1)})
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_text(tmp_path):
    target = atomic_write_text(tmp_path / "m.json", '{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n' and temp_files(tmp_path) == []


# ------------------------------------------------------------------ malformed files


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("notes.txt", "hello")
    return buffer.getvalue()


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


def _with(saved: Path, **changes) -> bytes:
    """The saved file's fields with ``changes`` (None deletes), as a hand-edited file would
    be: rewritten without the list of fields, so the checks of each field are exercised."""
    arrays = arrays_of(saved)
    arrays.pop("fields", None)
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    return _npz_bytes(**arrays)


BAD_FILES = {
    "empty": (lambda s: b"", ["is empty"]),
    "text": (lambda s: b"user,item\n1,2\n", ["neither an .npz archive nor an .npy array"]),
    "truncated": (lambda s: s.read_bytes()[:-100], ["truncated, corrupt"]),
    "half": (lambda s: s.read_bytes()[: s.stat().st_size // 2], ["truncated, corrupt"]),
    "npy": (lambda s: _npy_bytes(), ["single .npy array"]),
    "zip": (lambda s: _zip_bytes(), ["zip file but not a lightgcn-sparse checkpoint"]),
    "other-npz": (lambda s: _npz_bytes(weights=np.zeros(3)), ["not a lightgcn-sparse one"]),
    "version-2": (lambda s: _with(s, version=np.array(2)), ["format version 2", f"{VERSION}"]),
    "no-version": (lambda s: _with(s, version=None), ["format version None"]),
    "text-version": (lambda s: _with(s, version=np.array("one")), ["format version None"]),
    "no-embedding": (lambda s: _with(s, embedding=None), ["lacks the field(s) ['embedding']"]),
    "bad-json": (lambda s: _with(s, config=np.array("{oops")), ["'config' is not valid JSON"]),
    "future-config": (
        lambda s: _with(s, config=np.array('{"embedding_dim": 4, "warp": 9}')),
        ["config cannot be used by this version", "warp"],
    ),
    "bad-config-value": (
        lambda s: _with(s, config=np.array('{"embedding_dim": -4}')),
        ["config cannot be used", "embedding_dim"],
    ),
    "wrong-shape": (
        lambda s: _with(s, embedding=np.zeros((3, 4), dtype=np.float32)),
        ["embedding is float32 of shape (3, 4)", "(35, 4)"],
    ),
    "nan-embedding": (
        lambda s: _with(s, embedding=np.full((35, 4), np.nan, dtype=np.float32)),
        ["embedding holds NaN"],
    ),
    "int-embedding": (
        lambda s: _with(s, embedding=np.zeros((35, 4), dtype=np.int64)),
        ["embedding is int64"],
    ),
    "bad-shape-field": (lambda s: _with(s, shape=np.array([20])), ["'shape'"]),
    "bad-csr": (
        lambda s: _with(s, train_indices=np.full_like(arrays_of(s)["train_indices"], 99)),
        ["train_indptr, train_indices", "20 x 15 CSR"],
    ),
    "bad-ids": (lambda s: _with(s, item_ids=np.array(["a"])), ["item_ids has shape (1,)"]),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_load_rejects_malformed_files(saved, tmp_path, kind):
    make, words = BAD_FILES[kind]
    path = tmp_path / f"{kind}.npz"
    path.write_bytes(make(saved))
    with pytest.raises(CheckpointError) as excinfo:
        LightGCN.load(path)
    message = str(excinfo.value)
    assert repr(str(path)) in message
    for word in words:
        assert word in message, message
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--model", str(path)], catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and str(path) in result.output


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="'.*nothing.npz' does not exist"):
        LightGCN.load(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError, match="is a directory, not a file"):
        LightGCN.load(tmp_path)


def test_a_malicious_object_array_is_never_unpickled(saved, tmp_path):
    marker = tmp_path / "pwned"
    payload = np.array([Evil(marker)], dtype=object)
    # The payload is live: unpickling it really would create the marker.
    pickle.loads(pickle.dumps(Evil(tmp_path / "control")))
    assert (tmp_path / "control").exists()
    for name, arrays in {
        "evil-embedding.npz": dict(arrays_of(saved), embedding=payload),
        "evil-extra.npz": dict(arrays_of(saved), notes=payload),
    }.items():
        path = tmp_path / name
        np.savez(path, **arrays)  # numpy pickles the object array into the file
        with pytest.raises(CheckpointError, match="object array, .* never unpickles"):
            LightGCN.load(path)
        result = CliRunner().invoke(main, ["evaluate", "--model", str(path)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        with pytest.raises(CheckpointError):
            LightGCN(embedding_dim=4, epochs=1).fit(small_matrix(), resume=path)
        assert not marker.exists()


def test_a_pickle_renamed_npz_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"embedding": Evil(marker)}))
    with pytest.raises(CheckpointError, match="neither an .npz archive nor .* never unpickles"):
        LightGCN.load(path)
    with pytest.raises(CheckpointError):
        read_npz(path)
    result = CliRunner().invoke(main, ["recommend", "--model", str(path), "--user", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not marker.exists()


@settings(max_examples=40)
@given(data=st.data())
def test_any_truncation_is_detected(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cut")
    path = folder / "model.npz"
    atomic_write_npz(path, {"embedding": np.arange(12.0).reshape(3, 4), "note": np.array("x")})
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    path.write_bytes(raw[:cut])
    with pytest.raises(CheckpointError):
        read_npz(path)


def test_a_directory_that_lost_entries_is_detected(tmp_path):
    """A damaged zip directory can drop its last entries silently (a flipped byte in a
    directory record does it); the list of fields, written first, catches that."""
    path = tmp_path / "model.npz"
    atomic_write_npz(path, {"embedding": np.arange(4.0), "note": np.array("x")})
    with zipfile.ZipFile(path) as whole:
        kept = [(info, whole.read(info)) for info in whole.infolist()[:-1]]
    with zipfile.ZipFile(path, "w") as damaged:
        for info, payload in kept:
            damaged.writestr(info, payload)
    with pytest.raises(CheckpointError, match="is damaged: its fields do not match the list"):
        read_npz(path)


@settings(max_examples=60)
@given(data=st.data())
def test_flipped_bytes_are_detected_or_harmless(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flip")
    path = folder / "model.npz"
    original = {"embedding": np.arange(12.0).reshape(3, 4), "note": np.array("x")}
    atomic_write_npz(path, original)
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    raw[position] ^= data.draw(st.integers(1, 255), label="mask")
    path.write_bytes(bytes(raw))
    try:
        loaded = read_npz(path)
    except CheckpointError:
        return
    for key, value in original.items():  # the zip's CRC-32 vouches for every array
        np.testing.assert_array_equal(loaded[key], value)


# ------------------------------------------------------------------ round trips


def test_load_a_training_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.npz"
    trained = LightGCN(embedding_dim=4, epochs=3, batch_size=16).fit(
        small_matrix(), show_progress=False, checkpoint_path=path, checkpoint_every=3
    )
    loaded = LightGCN.load(path)
    assert torch.equal(loaded.embedding_, trained.embedding_)
    assert len(loaded.history_) == 3
    np.testing.assert_array_equal(loaded.recommend(0)[0], trained.recommend(0)[0])


def test_ids_and_dataset_survive_a_round_trip_with_their_types(tmp_path):
    users, items = np.array([f"u{i}" for i in range(20)]), np.arange(100, 115)
    trained = LightGCN(embedding_dim=4, epochs=1).fit(
        small_matrix(), show_progress=False, user_ids=users, item_ids=items
    )
    trained.dataset = "tiny"
    loaded = LightGCN.load(trained.save(tmp_path / "m.npz"))
    assert loaded.dataset == "tiny"
    assert loaded.user_ids.tolist() == users.tolist() and loaded.user_ids.dtype.kind == "U"
    assert loaded.item_ids.tolist() == items.tolist() and loaded.item_ids.dtype == np.int64
    assert loaded.user_index("u3") == 3 and loaded.item_index(103) == 3
    # Text ids that look like numbers stay text.
    digits = np.array([str(i) for i in range(20)])
    trained = LightGCN(embedding_dim=4, epochs=1).fit(
        small_matrix(), show_progress=False, user_ids=digits
    )
    loaded = LightGCN.load(trained.save(tmp_path / "d.npz"))
    assert loaded.user_ids.dtype.kind == "U" and loaded.user_ids.tolist() == digits.tolist()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback without CUDA")
def test_a_cuda_model_loads_on_the_cpu_with_a_warning(saved, tmp_path):
    arrays = arrays_of(saved)
    config = json.loads(str(arrays["config"]))
    config["device"] = "cuda:0"
    path = tmp_path / "gpu.npz"
    path.write_bytes(_with(saved, config=np.array(json.dumps(config))))
    with pytest.warns(UserWarning, match="trained on 'cuda:0'.*loading it on the CPU"):
        loaded = LightGCN.load(path)
    assert loaded.device.type == "cpu"


def test_cli_refuses_a_model_from_another_dataset(tmp_path):
    data = tmp_path / "tiny.csv"
    rng = np.random.default_rng(0)
    rows = [f"{u},{i}" for u in range(25) for i in rng.choice(22, 5, replace=False)]
    data.write_text("user,item\n" + "\n".join(rows) + "\n")
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "--dataset", str(data), "--out", str(out), "--epochs", "1", "--quiet"]
    assert runner.invoke(main, args).exit_code == 0
    other = tmp_path / "other.csv"
    other.write_text("user,item\n" + "\n".join(rows[:-5]) + "\n")  # one user fewer
    result = runner.invoke(
        main, ["evaluate", "--model", str(out / "model.npz"), "--dataset", str(other)]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "was trained on another dataset ('tiny': 25 users x 22 items)" in result.output
    assert "24 users x" in result.output
