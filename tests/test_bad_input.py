"""Bad input is refused with a ValueError that names the argument (docs/conventions.md).

Issue 17 item 6: wrong shapes, ranks out of range, NaN/inf, non-integer sizes, negative or NaN
step sizes and violated assumptions, tried on the public functions of each paper package as a
user would. Each case asserts the exception type and, with ``match``, that the message names the
argument (or the violated assumption). Valid input is covered by the other test files.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory import dmf, lin, lora, s2ft
from lowrank_theory.dmf import models as dmf_models
from lowrank_theory.lin import models as lin_models

KEY = jax.random.key(0)
I3 = np.eye(3)
A3 = np.diag([3.0, 2.0, 1.0])
NAN3 = np.full((3, 3), np.nan)


@functools.cache
def s2ft_instance():
    return lt.build_instance(0, (4, 5, 3), 1)


@functools.cache
def mlp():
    return lin_models.mlp_init(KEY, (3, 4, 1))


def x6():
    return jax.random.normal(KEY, (6, 3))


@functools.cache
def dmf_weights():
    return lt.orthogonal_init(KEY, 6, 3, 0.5)


def phi6():
    return jnp.outer(jnp.arange(6.0), jnp.ones(6))


LORA = {
    "lemma1 rank 0": (lambda: lt.linear_min_error([I3, I3], A3, 0), r"rank .* >= 1"),
    "lemma1 rank > D": (lambda: lt.linear_min_error([I3, I3], A3, 10), r"rank .* <= 3"),
    "lemma1 rank 1.5": (lambda: lt.linear_min_error([I3, I3], A3, 1.5), r"rank .* integer"),
    "lemma1 NaN target": (lambda: lt.linear_min_error([I3, I3], NAN3, 1), "target contains NaN"),
    "lemma1 frozen shapes": (lambda: lt.linear_min_error([I3, np.eye(4)], A3, 1), r"frozen\[1\]"),
    "lemma1 no frozen": (lambda: lt.linear_min_error([], A3, 1), "frozen must be a non-empty"),
    "lemma1 singular frozen": (
        lambda: lt.linear_adapters([I3, np.zeros((3, 3))], A3, 1),
        "W_2 is singular",
    ),
    "lora_product lengths": (lambda: lt.lora_product([I3, I3], [I3]), "adapters"),
    "relu_fnn input width": (
        lambda: lt.relu_fnn([I3], [np.zeros(3)], np.ones((2, 4))),
        "x must have shape",
    ),
    "uniform_partition L < L_bar": (lambda: lt.uniform_partition(2, 3), "L >= L_bar"),
    "rowspace k1 > D": (lambda: lt.rowspace_from_stein(I3, 4), r"k1 .* <= 3"),
    # issue 17: reduced_rank_fit accepted k = 0 and k > min(m, D)
    "reduced_rank_fit k = 0": (
        lambda: lt.reduced_rank_fit(np.ones((2, 5)), np.ones((3, 5)), 0),
        r"k \(rank of Z\) must be >= 1",
    ),
    "reduced_rank_fit k too big": (
        lambda: lt.reduced_rank_fit(np.ones((2, 5)), np.ones((3, 5)), 3),
        r"k \(rank of Z\) must be <= 2",
    ),
    "stein sigma shape": (
        lambda: lt.stein_matrix(np.ones((10, 3)), np.ones(10), np.eye(2)),
        "sigma must be",
    ),
    "stein y length": (lambda: lt.stein_matrix(np.ones((10, 3)), np.ones(9), I3), "y must have"),
    "train_linear_lora lr < 0": (
        lambda: lora.train_linear_lora([I3], A3, 1, KEY, lr=-0.1, steps=1),
        "lr must be > 0",
    ),
    "train_linear_lora lr NaN": (
        lambda: lora.train_linear_lora([I3], A3, 1, KEY, lr=float("nan"), steps=1),
        "lr must be finite",
    ),
    "train_lora lr < 0": (
        lambda: lt.train_lora([I3], [np.zeros(3)], np.ones((4, 3)), np.ones((4, 3)), 1, KEY, lr=-1),
        "lr must be > 0",
    ),
    "finetune_first_layer seeds 0": (
        lambda: lt.finetune_first_layer(
            np.ones((4, 3)), np.ones((4, 1)), [np.ones((1, 3))], KEY, seeds=0
        ),
        "seeds must be >= 1",
    ),
}

S2FT = {
    "build dims too short": (lambda: lt.build_instance(0, (4,), 1), "dims"),
    "build width 0": (lambda: lt.build_instance(0, (4, 0, 3), 1), r"dims\[1\] must be >= 1"),
    "build ell 0": (lambda: lt.build_instance(0, (4, 5, 3), 0), "ell must be >= 1"),
    "build seed 0.5": (lambda: lt.build_instance(0.5, (4, 5, 3), 1), "seed must be an integer"),
    "build residual_decay NaN": (
        lambda: lt.build_instance(0, (4, 5, 3), 1, residual_decay=float("nan")),
        "residual_decay must be finite",
    ),
    "build residual_scale < 0": (
        lambda: lt.build_instance(0, (4, 5, 3), 1, residual_scale=-1.0),
        "residual_scale must be >= 0",
    ),
    "sample n = 0": (lambda: lt.sample(s2ft_instance(), 0, KEY), "n must be >= 1"),
    "sample n = 2.5": (lambda: lt.sample(s2ft_instance(), 2.5, KEY), "n must be an integer"),
    "min_norm_lora r = 0": (lambda: lt.min_norm_lora(s2ft_instance(), 1, 0), r"r \(LoRA rank\)"),
    "min_norm_lora r > d": (lambda: lt.min_norm_lora(s2ft_instance(), 1, 50), r"r \(LoRA rank\)"),
    "min_norm_s2ft channel out of range": (
        lambda: lt.min_norm_s2ft(s2ft_instance(), 1, [9]),
        r"channels \[9\] out of range",
    ),
    "min_norm_s2ft repeated channel": (
        lambda: lt.min_norm_s2ft(s2ft_instance(), 1, [0, 0]),
        "S has repeated",
    ),
    "excess_risk model shape": (
        lambda: lt.excess_risk(s2ft_instance(), np.ones((2, 2))),
        "model matrix must have shape",
    ),
    "gd_lora lr < 0": (
        lambda: lt.gd_lora(s2ft_instance(), 1, 1, lr=-1.0, steps=1),
        "lr must be > 0",
    ),
    "gd_lora init_scale < 0": (
        lambda: lt.gd_lora(s2ft_instance(), 1, 1, init_scale=-1.0, steps=1),
        "init_scale must be > 0",
    ),
    "gd_s2ft lr NaN": (
        lambda: lt.gd_s2ft(s2ft_instance(), 1, [0], lr=float("nan"), steps=1),
        "lr must be finite",
    ),
    "channel_selector s > d": (lambda: lt.channel_selector(s2ft_instance(), 1, 50), r"s \(number"),
    "s2ft_sparse_update v shape": (
        lambda: s2ft.s2ft_sparse_update(np.ones((5, 4)), [0], np.ones((3, 1))),
        "v must have shape",
    ),
}

LIN = {
    # issue 17: the next four gave an XLA dot_general TypeError, were ignored or gave (0, 0)
    "ntk input width (structured)": (
        lambda: lt.empirical_ntk(lin_models.MLP(), mlp(), jnp.ones((5, 4))),
        r"x1 has shape \(5, 4\); wrong input width",
    ),
    "ntk input width (ntvp)": (
        lambda: lt.empirical_ntk(lin_models.mlp_apply, mlp(), jnp.ones((5, 4)), method="ntvp"),
        "wrong input width",
    ),
    "ntk block_size 0 (structured)": (
        lambda: lt.empirical_ntk(lin_models.MLP(), mlp(), x6(), block_size=0),
        "block_size must be >= 1",
    ),
    "ntk no inputs": (
        lambda: lt.empirical_ntk(lin_models.MLP(), mlp(), jnp.ones((0, 3))),
        "x1 holds no input",
    ),
    "mlp width 0": (lambda: lin_models.mlp_init(KEY, (3, 0, 1)), r"sizes\[1\] must be >= 1"),
    "mlp width 2.5": (lambda: lin_models.mlp_init(KEY, (3, 2.5, 1)), r"sizes\[1\] must be an int"),
    "ntk x NaN": (
        lambda: lt.empirical_ntk(lin_models.MLP(), mlp(), x6().at[0, 0].set(jnp.nan)),
        "x1 contains NaN",
    ),
    "ntk x2 width": (
        lambda: lt.empirical_ntk(lin_models.MLP(), mlp(), x6(), jnp.ones((2, 4))),
        "x1 and x2",
    ),
    "krr sigma 0": (lambda: lt.krr_fit(2 * np.eye(4), np.ones(4), 0.0), "sigma must be"),
    "krr kernel not PSD": (
        lambda: lt.krr_fit(-2 * np.eye(4), np.ones(4), 1.0),
        "K is not positive semidefinite",
    ),
    "eta singular K": (
        lambda: lt.eta(np.diag([1.0, 0, 1, 1]), np.eye(4)),
        "K must be positive definite",
    ),
    "regularized_finetune lr < 0": (
        lambda: lt.regularized_finetune(
            lin_models.MLP(), mlp(), x6(), jnp.ones(6), lam=1.0, lr=-0.1, steps=2
        ),
        "lr must be positive",
    ),
    "regularized_finetune input width": (
        lambda: lt.regularized_finetune(
            lin_models.MLP(), mlp(), jnp.ones((6, 4)), jnp.ones(6), lam=1.0, lr=0.1, steps=2
        ),
        "wrong input width",
    ),
    "gradient_flow input width": (
        lambda: lt.gradient_flow(
            lin_models.MLP(), mlp(), jnp.ones((6, 4)), jnp.ones(6), lam=1.0, t_end=1.0, n_steps=2
        ),
        "wrong input width",
    ),
    "theorem2 lengths": (
        lambda: lin.theorem2_bound(1.0, 1.0, np.ones(3), np.ones(2)),
        "lams must have one entry per time",
    ),
    "theorem4 radius 0": (lambda: lin.theorem4_threshold(1.0, 1.0, 0.0), "radius must be > 0"),
    "linear_model_lipschitz radius < 0": (
        lambda: lin.linear_model_lipschitz(x6(), -1.0),
        "radius must be >= 0",
    ),
    "sampled_lipschitz n_samples 0": (
        lambda: lin.sampled_lipschitz(lin_models.MLP(), mlp(), x6(), 1.0, KEY, n_samples=0),
        "n_samples must be >= 1",
    ),
    "LoRALayer rank 0": (lambda: lin_models.LoRALayer(mlp(), 0, 0), "rank must be >= 1"),
    "LayerSubset layer out of range": (
        lambda: lin_models.LayerSubset(mlp(), (5,)),
        "layers must be a non-empty tuple",
    ),
}

DMF = {
    # issue 17: end_to_end([3x3, 4x4]) raised XLA's dot_general TypeError; compress(rank=0) and
    # an MLP of width 0 returned empty arrays
    "end_to_end shapes": (
        lambda: lt.end_to_end([jnp.eye(3), jnp.eye(4)]),
        r"weights\[1\] has shape \(4, 4\) but weights\[0\] outputs 3 rows",
    ),
    "end_to_end vector": (lambda: lt.end_to_end([jnp.ones(3)]), r"weights\[0\] must be a matrix"),
    "end_to_end empty": (lambda: lt.end_to_end([]), "weights must hold at least one layer"),
    "compress rank 0": (lambda: lt.compress(dmf_weights(), phi6(), 0), "rank must be >= 1"),
    "compress rank >= d/2": (lambda: lt.compress(dmf_weights(), phi6(), 3), "m = d - 2r > 0"),
    "compress rank 1.5": (lambda: lt.compress(dmf_weights(), phi6(), 1.5), "rank must be an int"),
    "compress target shape": (
        lambda: lt.compress(dmf_weights(), jnp.ones((5, 5)), 1),
        "target must be 6x6",
    ),
    "deep LoRA mlp width 0": (
        lambda: dmf_models.mlp_init(KEY, (4, 0, 2)),
        r"sizes\[1\] must be >= 1",
    ),
    "orthogonal_init eps < 0": (lambda: lt.orthogonal_init(KEY, 6, 3, -0.5), "eps_l must be"),
    "run_gd lr < 0": (lambda: lt.run_gd(dmf_weights(), phi6(), lr=-0.1, steps=2), "learning rates"),
    "run_gd steps < 0": (lambda: lt.run_gd(dmf_weights(), phi6(), lr=0.1, steps=-1), "steps must"),
    "run_gd mask shape": (
        lambda: lt.run_gd(dmf_weights(), phi6(), lr=0.1, steps=2, mask=jnp.ones((5, 5))),
        "mask must have",
    ),
    "run_gd NaN target": (
        lambda: lt.run_gd(dmf_weights(), phi6().at[0, 0].set(jnp.nan), lr=0.1, steps=2),
        "target contains NaN",
    ),
    "completion frac 0": (lambda: lt.completion_instance(KEY, 5, 1, 0.0), "observed fraction"),
    "completion scale": (
        lambda: lt.completion_instance(KEY, 5, 1, 0.5, scale="zzz"),
        "scale must be 'unit' or 'entries'",
    ),
    "nonlinear_gradient layer 0": (
        lambda: lt.nonlinear_gradient(dmf_weights(), phi6(), layer=0),
        "layer must be >= 1",
    ),
    "lr_from_mean_loss d_rows 0": (lambda: dmf.lr_from_mean_loss(0.1, 0), "d_rows must be >= 1"),
    "run_narrow width 0": (
        lambda: lt.run_narrow(KEY, phi6(), 0, 3, 0.5, lr=0.1, steps=2),
        "width must be >= 1",
    ),
}


def _cases(table):
    return [pytest.param(fn, match, id=name) for name, (fn, match) in table.items()]


@pytest.mark.parametrize("paper", [LORA, S2FT, LIN, DMF], ids=["lora", "s2ft", "lin", "dmf"])
def test_at_least_twelve_cases_per_paper(paper):
    assert len(paper) >= 12


@pytest.mark.parametrize(("call", "match"), _cases(LORA))
def test_lora_refuses(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(("call", "match"), _cases(S2FT))
def test_s2ft_refuses(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(("call", "match"), _cases(LIN))
def test_lin_refuses(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(("call", "match"), _cases(DMF))
def test_dmf_refuses(call, match):
    with pytest.raises(ValueError, match=match):
        call()
