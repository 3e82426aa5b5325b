"""Typed run configs: every key and value checked on load, YAML round trips, shipped configs by name."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from geoop.cli import main
from geoop.errors import GeoopError
from geoop.training.config import RunConfig, TrainConfig, load_config, shipped_configs
from geoop.workflow.main_job import DEFAULT


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=four", "train.batch_size = 'four' is not of type int"),
    ("train.schedule=linear", "train.schedule = 'linear' is not of type"),
    ("train.amp=3", "train.amp = 3 is not of type bool"),
    ("model.hidden=1.5", "model.hidden = 1.5 is not of type int"),
    ("model.symmetries=flip_x", "model.symmetries = 'flip_x' is not of type"),
    ("data.lift=[u]", "data.lift = ['u'] is not of type"),
    ("model.hiden=8", "did you mean model.hidden?"),
    ("mdoel.hidden=8", "did you mean model?"),
    ("model.name=fn", "did you mean fno?"),
])
def test_a_wrong_value_or_key_is_refused_naming_what_was_expected(override, message, capsys):
    assert main(["config", "show", "fno_poisson2d", "--set", override]) == 2
    assert message in capsys.readouterr().err


def test_numbers_are_coerced_only_where_the_type_allows():
    config = load_config("fno_poisson2d", ["train.lr=1e-3", "train.budget=60", "model.oversample=2"],
                         need_data=False)
    assert config.train.lr == 1e-3 and isinstance(config.train.budget, float)
    assert config.model.options["oversample"] == 2.0 and isinstance(config.model.options["oversample"], float)
    with pytest.raises(GeoopError, match="train.epochs"):
        load_config(None, ["train.epochs=2.5"], need_data=False)
    with pytest.raises(GeoopError, match="positive"):
        TrainConfig(budget=-1)


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_round_trips_through_yaml(name):
    config = load_config(name, need_data=False)
    again = RunConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())))
    assert again == config
    full = RunConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict(defaults=True))))
    assert full.model.resolved_options() == config.model.resolved_options()
    assert dataclasses.asdict(full.train) == dataclasses.asdict(config.train)


def test_a_shipped_config_loads_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/kdfno_airfoil2d.yaml", need_data=False) == load_config("kdfno_airfoil2d",
                                                                                          need_data=False)
    with pytest.raises(GeoopError, match="fno_poisson2d"):  # the fix lists the shipped ones
        load_config("no_such_config", need_data=False)


def test_config_show_lists_model_defaults_but_not_what_the_data_fills(capsys):
    assert main(["config", "show", "gino_poisson2d"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["radius_factor"] == 1.5 and shown["model"]["fill_empty"] == "nearest"
    assert "boundary_channels" not in shown["model"]


def test_the_main_job_trains_the_shipped_recipe():
    main_job = load_config(DEFAULT["config"], DEFAULT["overrides"], need_data=False)
    shipped = load_config("fno_poisson2d", need_data=False)
    assert main_job.model == shipped.model
    assert dataclasses.replace(main_job.train, device="auto") == shipped.train
