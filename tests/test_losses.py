"""zoo.losses against NumPy formulas: the masked mean, and the projected cross-entropy that
never holds every logit, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import losses
from tests.tolerances import assert_close


def _numpy_ce(h, w, b, labels, mask):
    logits = np.asarray(h, np.float64) @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    picked = np.take_along_axis(logits, np.asarray(labels)[..., None], -1)[..., 0]
    m = np.asarray(mask, np.float64)
    return ((lse - picked) * m).sum() / max(m.sum(), 1)


@pytest.mark.parametrize("rows", [1, 4, 7, None])
def test_projected_cross_entropy_equals_the_full_logits_loss(rows):
    # 2 x 7 = 14 rows in chunks of 1, 4 (padded to 16), 7 and all; a mask with zeros
    ks = jax.random.split(jax.random.key(0), 4)
    h = jax.random.normal(ks[0], (2, 7, 5))
    w, b = jax.random.normal(ks[1], (11, 5)), jax.random.normal(ks[2], (11,))
    labels = jax.random.randint(ks[3], (2, 7), 0, 11)
    mask = jnp.ones((2, 7)).at[1, 4:].set(0)
    got = losses.projected_cross_entropy(h, w, b, labels, mask, rows=rows)
    assert_close(got, _numpy_ce(h, w, b, labels, mask))
    f = lambda h, w, b: losses.projected_cross_entropy(h, w, b, labels, mask, rows=rows)
    full = lambda h, w, b: losses.cross_entropy(h @ w.T + b, labels, mask)
    for g, want in zip(jax.grad(f, argnums=(0, 1, 2))(h, w, b),
                       jax.grad(full, argnums=(0, 1, 2))(h, w, b)):
        assert_close(g, want, rtol=1e-5, atol=1e-6)


def test_masked_mean_weights_entries_and_survives_an_empty_mask():
    x = jnp.array([[1.0, 2.0], [3.0, 10.0]])
    assert float(losses.masked_mean(x, jnp.array([[1, 1], [1, 0]]))) == 2.0
    assert float(losses.masked_mean(x, jnp.zeros((2, 2)))) == 0.0
    assert float(losses.masked_mean(x, None)) == 4.0


def test_every_task_has_a_loss():
    assert set(losses.TASKS) == set(losses.LOSSES)
    assert {"lm", "masked_lm", "seq2seq", "classification"} <= set(losses.TASKS)


def test_cross_entropy_refuses_labels_outside_the_classes_even_under_jit():
    logits = jnp.zeros((3, 4))
    for bad in ([0, 4, 1], [0, -1, 1]):
        with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 3\]"):
            losses.cross_entropy(logits, jnp.array(bad))
        with pytest.raises(Exception, match=r"labels must hold class ids in \[0, 3\]"):
            jax.block_until_ready(jax.jit(losses.cross_entropy)(logits, jnp.array(bad)))
    # a masked position may hold anything (padding), and a good batch passes under jit
    masked = losses.cross_entropy(logits, jnp.array([0, 9, 1]), jnp.array([1, 0, 1]))
    assert float(masked) == pytest.approx(np.log(4))
    assert float(jax.jit(losses.cross_entropy)(logits, jnp.array([3, 2, 1]))) == pytest.approx(
        np.log(4))


def test_language_model_targets_outside_the_vocabulary_are_refused():
    import zoo
    spec = zoo.get("transformer-lm_tiny")
    params = spec.init(jax.random.key(0))
    (tokens,), targets = spec.example_batch(jax.random.key(1), 2)
    loss = lambda t: spec.module.loss(params, (tokens,), t, spec.config)
    assert np.isfinite(float(loss(targets)))
    with pytest.raises(ValueError, match=r"labels must hold class ids in \[0, 11\]"):
        loss(targets.at[0, 0].set(12))
