"""Config validation, presets and round-trips."""

import math

import pytest

from lightgcn_sparse.config import PRESETS, Config, preset


def test_defaults_validate_and_round_trip():
    cfg = Config().validate()
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_cs224w_preset_is_the_tutorials_setup():
    cfg = preset("cs224w")
    assert (cfg.batch_size, cfg.epochs, cfg.batches_per_epoch) == (256, 50, 200)
    assert (cfg.learning_rate, cfg.lr_decay, cfg.reg) == (1e-3, 0.9, 1e-6)
    assert (cfg.embedding_dim, cfg.num_layers, cfg.sampling) == (32, 3, "users")
    assert cfg.ks == (20,) and cfg.steps_per_epoch(10**6) == 200


def test_default_epoch_is_one_pass_over_the_interactions():
    assert Config(batch_size=2048).steps_per_epoch(80808) == math.ceil(80808 / 2048)


@pytest.mark.parametrize(
    "field, value, error, match",
    [
        ("embedding_dim", 0, ValueError, r"embedding_dim must be an int in \[1, inf\)\. Got 0"),
        ("embedding_dim", -3, ValueError, "embedding_dim"),
        ("num_layers", -1, ValueError, "num_layers"),
        ("num_layers", 1.5, TypeError, "num_layers"),
        ("learning_rate", 0.0, ValueError, "learning_rate"),
        ("learning_rate", float("nan"), ValueError, "learning_rate"),
        ("reg", -1e-4, ValueError, "reg"),
        ("batch_size", 0, ValueError, "batch_size"),
        ("lr_decay", 1.5, ValueError, "lr_decay"),
        ("sampling", "edges", ValueError, "sampling"),
        ("metric", "auc@10", ValueError, "metric"),
        ("metric", "ndcg", ValueError, "metric"),
        ("kernel", "dense", ValueError, "kernel"),
        ("alpha", (0.5, 0.5), ValueError, "alpha must have num_layers \\+ 1 = 4"),
        ("alpha", (0.25, 0.25, -0.5, 1.0), ValueError, r"alpha\[2\]"),
    ],
)
def test_bad_values_name_the_field(field, value, error, match):
    with pytest.raises(error, match=match):
        Config(**{field: value}).validate()


def test_num_layers_zero_is_matrix_factorization():
    assert Config(num_layers=0).validate().num_layers == 0


def test_unknown_field_and_preset_are_refused():
    with pytest.raises(TypeError, match="unknown Config field"):
        Config().replace(embeding_dim=3)
    with pytest.raises(ValueError, match="preset must be one of"):
        preset("nope")
    assert set(PRESETS) >= {"default", "cs224w", "recbole"}


def test_metric_cutoff_is_added_to_ks():
    assert 50 in Config(metric="recall@50").validate().ks
