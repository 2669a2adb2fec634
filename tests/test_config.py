"""Config: type coercion, YAML round trip, unknown keys and validation errors that name the field."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from supcon.config import (Config, ConfigError, coerce, config_from_dict, config_to_dict, load_config,
                           save_config)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("epochs", "7", 7),
        ("epochs", 7.0, 7),
        ("lr", "1e-3", 1e-3),
        ("lr", 2, 2.0),
        ("flip", "false", False),
        ("flip", "yes", True),
        ("flip", "0", False),
        ("flip", True, True),
        ("image_size", "none", None),
        ("image_size", "null", None),
        ("image_size", None, None),
        ("image_size", "32", 32),
        ("label_fraction", "0.1", 0.1),
        ("loss_chunk", 256, "256"),
        ("arch", "small", "small"),
    ],
)
def test_coerce_converts_to_the_field_type(name, raw, expected):
    value = coerce(name, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("epochs", "ten"), ("epochs", 2.5), ("lr", "fast"), ("flip", "maybe"), ("epochs", None)],
)
def test_coerce_errors_name_the_field_and_the_value(name, raw):
    with pytest.raises(ConfigError) as info:
        coerce(name, raw)
    assert name in str(info.value)


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="unknown config key 'learning_rate'"):
        config_from_dict({"learning_rate": 0.1})


def test_unknown_yaml_key_is_an_error_naming_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nbatchsize: 64\n")
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(path)


def test_yaml_round_trip_preserves_every_field(tmp_path):
    cfg = config_from_dict({
        "dataset": "npz:/data/x.npz", "arch": "small", "epochs": 3, "lr": 0.025, "image_size": 32,
        "label_fraction": 0.5, "ce_lr": None, "flip": False, "loss_chunk": "512", "device": "cpu",
        "warmup_epochs": 1.5, "optimizer": "lars", "schedule": "step", "method": "simclr",
    })
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    loaded = load_config(path)
    assert loaded == cfg
    # The file is plain YAML with every field, readable without supcon.
    assert set(yaml.safe_load(path.read_text())) == {f.name for f in dataclasses.fields(Config)}


def test_yaml_round_trip_of_defaults(tmp_path):
    path = tmp_path / "config.yaml"
    save_config(Config(), path)
    assert load_config(path) == Config()


def test_load_config_applies_overrides_and_coerces_yaml_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: '5'\nlr: 0.2\nflip: 'off'\n")
    cfg = load_config(path, overrides={"lr": "0.3"})
    assert (cfg.epochs, cfg.lr, cfg.flip) == (5, 0.3, False)


def test_load_config_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_empty_yaml_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == Config()


def test_config_from_dict_keeps_base_values():
    base = config_from_dict({"epochs": 9, "arch": "small"})
    cfg = config_from_dict({"lr": 0.01}, base=base)
    assert (cfg.epochs, cfg.arch, cfg.lr) == (9, "small", 0.01)
    assert config_to_dict(cfg)["epochs"] == 9


@pytest.mark.parametrize(
    ("values", "field_name"),
    [
        ({"method": "foo"}, "method"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"schedule": "linear"}, "schedule"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -4}, "batch_size"),
        ({"lr": -1}, "lr"),
        ({"lr": 0}, "lr"),
        ({"temperature": 0}, "temperature"),
        ({"ce_lr": -0.1}, "ce_lr"),
        ({"ce_epochs": 0}, "ce_epochs"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"label_fraction": 0}, "label_fraction"),
        ({"crop_min": 1.5}, "crop_min"),
        ({"loss_chunk": "big"}, "loss_chunk"),
        ({"queue_size": -1}, "queue_size"),
        ({"queue_size": 8, "batch_size": 16}, "queue_size"),
        ({"image_size": 0}, "image_size"),
        ({"views": 0}, "views"),
    ],
)
def test_validation_errors_name_the_field(values, field_name):
    with pytest.raises(ConfigError) as info:
        config_from_dict(values)
    assert field_name in str(info.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        Config(epochs=0)


def test_validation_error_says_what_came():
    with pytest.raises(ConfigError, match=r"^warmup_epochs must be >= 0, got -2.0$"):
        config_from_dict({"warmup_epochs": -2})
    with pytest.raises(ConfigError, match="weight_decay"):
        config_from_dict({"weight_decay": float("nan")})


def test_arch_is_validated_in_the_config():
    from supcon.models import ARCHITECTURES

    with pytest.raises(ConfigError, match=r"arch must be one of .*resnet18.*got 'resnet9'"):
        config_from_dict({"arch": "resnet9"})
    for arch in ARCHITECTURES:
        assert config_from_dict({"arch": arch}).arch == arch


@pytest.mark.parametrize("text, match", [
    ("epochs: [1, 2\n", "not valid YAML"),
    ("!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
    ("- a\n- b\n", "must hold a mapping"),
])
def test_bad_yaml_files_are_config_errors_naming_the_file(tmp_path, text, match):
    from supcon.config import read_yaml_mapping

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        read_yaml_mapping(path, "--config file")
    assert "--config file" in str(info.value) and str(path) in str(info.value)


def test_non_utf8_and_missing_yaml_files_are_config_errors(tmp_path):
    from supcon.config import read_yaml_mapping

    path = tmp_path / "latin1.yaml"
    path.write_bytes("seed: 1 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml_mapping(path)
    with pytest.raises(ConfigError, match="not found"):
        read_yaml_mapping(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_yaml_mapping(empty) == {}


def test_the_cross_entropy_budget_falls_back_to_the_shared_one():
    from supcon.config import ce_epoch_count, ce_learning_rate

    assert ce_learning_rate({"lr": 0.5, "ce_lr": None}) == 0.5
    assert ce_learning_rate({"lr": 0.5, "ce_lr": 0.1}) == 0.1
    assert ce_epoch_count({"epochs": 10}) == 10
    assert ce_epoch_count({"epochs": 10, "ce_epochs": 3}) == 3


FLOAT_FIELDS = ["test_fraction", "label_fraction", "lr", "momentum", "weight_decay", "warmup_epochs", "temperature",
                "crop_min", "key_momentum", "linear_lr", "ce_lr", "imbalance_ratio", "cb_beta",
                "ce_weight"]


def test_every_float_field_is_listed():
    hints = {f.name: f.type for f in dataclasses.fields(Config)}
    assert sorted(FLOAT_FIELDS) == sorted(n for n, t in hints.items() if "float" in str(t))


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", float("inf")])
def test_non_finite_floats_are_refused_naming_the_field(name, raw):
    with pytest.raises(ConfigError, match=rf"^{name} must be a finite number, got -?(inf|nan)$"):
        config_from_dict({name: raw})


def test_yaml_infinity_is_refused(tmp_path):
    path = tmp_path / "inf.yaml"
    path.write_text("temperature: .inf\n")
    with pytest.raises(ConfigError, match="temperature must be a finite number"):
        load_config(path)


@pytest.mark.parametrize("method", ["supcon", "simclr"])
def test_one_view_is_refused_for_contrastive_methods(method):
    with pytest.raises(ConfigError, match=rf"^views must be >= 2 for method '{method}'.*no positive.*got 1$"):
        config_from_dict({"method": method, "views": 1})
    assert config_from_dict({"method": method, "views": 3}).views == 3


def test_tsne_points_zero_means_no_plot_and_negative_is_refused():
    assert config_from_dict({"tsne_points": 0}).tsne_points == 0
    assert config_from_dict({"tsne_points": 2}).tsne_points == 2
    for bad in (-1, 1):
        with pytest.raises(ConfigError, match=rf"tsne_points must be 0 \(no t-SNE plot\) or at least 2, got {bad}"):
            config_from_dict({"tsne_points": bad})


@pytest.mark.parametrize("values, flag", [
    ({"sampler": "m-per-class", "m_per_class": 1}, "--m-per-class must be >= 2"),
    ({"sampler": "m-per-class", "m_per_class": 3, "batch_size": 32}, r"--batch-size \(32\) must be divisible by --m-per-class \(3\)"),
    ({"m_per_class": 0}, "--m-per-class must be >= 1"),
    ({"sampler": "balanced"}, "sampler must be one of"),
    ({"class_weights": "inv"}, "class_weights must be one of"),
    ({"cb_beta": 1.0}, r"--cb-beta must be in \[0, 1\)"),
    ({"cb_beta": -0.1}, r"--cb-beta must be in \[0, 1\)"),
    ({"imbalance_ratio": 0.5}, "--imbalance-ratio must be >= 1"),
])
def test_sampler_and_imbalance_values_are_refused_naming_the_flag(values, flag):
    with pytest.raises(ConfigError, match=flag):
        config_from_dict(values)


def test_sampler_and_imbalance_defaults_and_valid_values():
    cfg = Config()
    assert (cfg.sampler, cfg.m_per_class, cfg.class_weights, cfg.cb_beta, cfg.imbalance_ratio) == (
        "random", 4, "none", 0.9999, None)
    cfg = config_from_dict({"sampler": "m-per-class", "m_per_class": 8, "batch_size": 64,
                            "class_weights": "effective-number", "imbalance_ratio": "100"})
    assert cfg.imbalance_ratio == 100.0 and cfg.m_per_class == 8


# supcon+ce and the ViT optimiser choice

@pytest.mark.parametrize("values, flag", [
    ({"ce_weight": -1}, "--ce-weight must be >= 0"),
    ({"method": "supcon+ce", "online_probe": True}, "--online-probe does not go with --method supcon"),
    ({"method": "supcon-ce"}, "method must be one of .*supcon\\+ce"),
    ({"optimizer": "adam"}, "optimizer must be one of .*adamw"),
])
def test_joint_and_optimizer_values_are_refused_naming_the_flag(values, flag):
    with pytest.raises(ConfigError, match=flag):
        config_from_dict(values)


def test_joint_defaults_and_the_automatic_optimizer():
    cfg = Config()
    assert (cfg.ce_weight, cfg.ce_detach, cfg.optimizer) == (1.0, False, "sgd")
    assert config_to_dict(cfg)["optimizer"] == "sgd"  # config.yaml of CNN runs as before
    assert Config(arch="vit-tiny").optimizer == "adamw" and Config(arch="small").optimizer == "sgd"
    assert config_from_dict({"arch": "vit-small", "optimizer": "auto"}).optimizer == "adamw"
    assert config_from_dict({"arch": "vit-small", "optimizer": "sgd"}).optimizer == "sgd"  # a choice is kept
    assert config_from_dict({"arch": "resnet18", "optimizer": "adamw"}).optimizer == "adamw"
    cfg = config_from_dict({"method": "supcon+ce", "ce_weight": "0.5", "ce_detach": True})
    assert (cfg.method, cfg.ce_weight, cfg.ce_detach) == ("supcon+ce", 0.5, True)
