"""The registry: names, specs, family modules' contract surface."""

import dataclasses
import importlib

import jax
import pytest

import zoo
from zoo.registry import FAMILIES, ModelSpec


def test_every_family_contributes_its_presets():
    names = zoo.list_models()
    assert len(names) == len(set(names))
    for family in FAMILIES:
        module = importlib.import_module(f"zoo.{family}")
        assert "tiny" in module.PRESETS, f"zoo.{family} has no tiny preset"
        assert zoo.list_models(family) == [f"{family}-{p}" for p in module.PRESETS]


def test_get_returns_a_spec_bound_to_its_config():
    spec = zoo.get("mlp-xor")
    assert isinstance(spec, ModelSpec)
    assert spec.family == "mlp" and spec.task == "classification"
    assert spec.config is zoo.mlp.PRESETS["xor"]
    params = spec.init(jax.random.key(0))
    (x,) = spec.example_inputs(jax.random.key(1), 5)
    assert spec.apply(params, x).shape == (5, 2)
    assert spec.num_params() == 2 * 8 + 8 + 8 * 2 + 2


def test_unknown_names_and_families_are_refused_with_suggestions():
    with pytest.raises(KeyError, match=r"did you mean \['mlp-tiny'"):
        zoo.get("mlp-tinyy")
    with pytest.raises(ValueError, match="family must be one of"):
        zoo.list_models("transformers")


def test_replace_validates_the_new_config():
    spec = zoo.get("mlp-tiny")
    assert spec.replace(out_dim=7).config.out_dim == 7
    assert spec.config.out_dim == 3, "the registered spec is unchanged"
    with pytest.raises(ValueError, match="out_dim"):
        spec.replace(out_dim=0)
    with pytest.raises(TypeError):
        spec.replace(no_such_field=1)


def test_specs_are_hashable_and_usable_as_static_arguments():
    spec = zoo.get("perceptron-tiny")
    assert hash(spec) == hash(zoo.get("perceptron-tiny"))
    f = jax.jit(lambda p, x, spec: spec.apply(p, x), static_argnums=2)
    (x,) = spec.example_inputs(jax.random.key(0), 4)
    assert f(spec.init(jax.random.key(1)), x, spec).shape == (4,)
    assert dataclasses.is_dataclass(spec)


def test_every_model_speaks_the_one_task_vocabulary():
    from zoo.losses import TASKS
    tasks = {name: zoo.get(name).task for name in zoo.list_models()}
    assert set(tasks.values()) <= set(TASKS)
    assert tasks["transformer-lm_tiny"] == "lm"
    assert tasks["transformer-mlm_tiny"] == "masked_lm"
    assert tasks["seq2seq-tiny"] == "seq2seq" == tasks["transformer-tiny"]


def test_declared_own_losses_are_the_families_that_define_loss():
    from zoo import registry
    for family in FAMILIES:
        module = importlib.import_module(f"zoo.{family}")
        assert ("loss" in vars(module)) == (family in registry.OWN_LOSS), family
        assert all(zoo.get(n).own_loss == (family in registry.OWN_LOSS)
                   for n in zoo.list_models(family))


def test_spec_for_binds_any_config_and_refuses_another_family_s():
    from zoo import mlp, registry, seq2seq
    spec = registry.spec_for("seq2seq", seq2seq.REVERSE, "seq2seq-reverse")
    assert (spec.name, spec.task, spec.config) == ("seq2seq-reverse", "seq2seq",
                                                   seq2seq.REVERSE)
    assert registry.spec_for(mlp, mlp.PRESETS["xor"]).name == "mlp-custom"
    with pytest.raises(TypeError, match="cfg must be a zoo.mlp.Config, got Config"):
        registry.spec_for("mlp", seq2seq.REVERSE)
    with pytest.raises(ValueError, match="family must be one of"):
        registry.spec_for("mlps", mlp.PRESETS["xor"])
