"""The retrain form has one source of truth: TrainConfig's fields, the quick recipe, config_arguments."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

import core  # noqa: F401  (TensorFlow with legacy Keras before anything else)
from core import checkpoints
from core.train import RECIPES, TrainConfig, parse_args
from dashboard import retrain_panel
from dashboard.retraining import TrainingManager


def test_every_form_field_is_a_train_config_field_labelled_by_its_help_text():
    fields = {item.name: item for item in dataclasses.fields(TrainConfig)}
    assert set(retrain_panel.FORM_FIELDS) <= set(fields)
    for name in retrain_panel.FORM_FIELDS:
        help_text = fields[name].metadata["help"]
        assert retrain_panel.field_label(name) == help_text[0].upper() + help_text[1:]


def test_the_form_starts_from_the_quick_recipe_and_the_shipped_pair(checkpoints_dir, monkeypatch):
    monkeypatch.setenv(checkpoints.CHECKPOINT_DIR_ENV, str(checkpoints_dir))
    config = retrain_panel.quick_config()
    trained_with = checkpoints.load_metadata(checkpoints_dir)["config"]
    assert config.init_from == str(checkpoints_dir)
    assert (config.arch, config.image_size) == (trained_with["arch"], trained_with["image_size"])
    untouched = {"init_from", "arch", "image_size"}
    quick = RECIPES["quick"]
    assert {f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in untouched} == {
        f.name: getattr(quick, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in untouched
    }


def test_the_form_changes_only_its_fields_and_refuses_others():
    recipe = RECIPES["quick"]
    config = retrain_panel.form_config(recipe, {"multiplier": 0.2, "adv_epsilon": 4 / 255, "adversarial_epochs": 3})
    assert config == dataclasses.replace(recipe, multiplier=0.2, adv_epsilon=4 / 255, adversarial_epochs=3)
    with pytest.raises(ValueError, match="learning_rate"):
        retrain_panel.form_config(recipe, {"learning_rate": 1.0})


def test_other_norms_keep_the_recipes_step_to_budget_ratio():
    recipe = RECIPES["quick"]
    assert retrain_panel.norm_defaults(recipe, "infinity") == (recipe.adv_step_size, recipe.adv_epsilon)
    step, budget = retrain_panel.norm_defaults(recipe, "l2")
    assert budget == 1.0 and step / budget == pytest.approx(recipe.adv_step_size / recipe.adv_epsilon)


def test_the_manager_runs_core_train_with_exactly_the_forms_config(tmp_path):
    """The subprocess's own command line parses back (core.train.parse_args) to the form's config."""
    recorded = tmp_path / "argv.json"
    trainer = [sys.executable, "-c", f"import json, sys; json.dump(sys.argv[1:], open({str(recorded)!r}, 'w'))"]
    config = retrain_panel.form_config(RECIPES["quick"], {"multiplier": 0.2, "adv_norm": "l2", "adv_epsilon": 1.0, "pgd_iterations": 5})
    manager = TrainingManager(trainer)
    assert manager.start(config, tmp_path / "beans", runs_root=tmp_path / "runs")[0]
    manager.wait(timeout=30)
    parsed, args = parse_args(json.loads(recorded.read_text()))
    assert parsed == config
    assert args.no_evaluate and args.data_dir == str(tmp_path / "beans")
    assert args.output_dir.startswith(str(tmp_path / "runs" / ".partial-")) and args.output_dir.endswith("nsl-x0.2-l2-1")
