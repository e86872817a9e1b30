"""Deep LoRA vs LoRA: step time and peak memory on the same model and batch (seed 004, App. B).

The paper (Table 2, BERT-base on a V100) reports 106 ms vs 102 ms per iteration and 12.65 GB
vs 12.53 GB. Here: a float64 tanh MLP 1024 -> 1024 x 4 -> 10, all four 1024 x 1024 hidden
weights adapted with r = 8, batch 256, one jitted Adam step (forward, backward, update) per
call. Times: min of repeated runs after a warm-up (compile excluded, block_until_ready), both
methods in this run. Peak memory: XLA's compiled memory analysis of the jitted step
(``jax.jit(step).lower(...).compile().memory_analysis()``: arguments + outputs + temporaries
- aliased bytes), which is deterministic on CPU, unlike process RSS.
"""

import jax
import optax
from _timing import entry, time_fn

import lowrank_theory as lt
from lowrank_theory.dmf import deep_lora as dl
from lowrank_theory.dmf import models

WIDTH, DEPTH, BATCH, R = 1024, 4, 256, 8


def _setup():
    sizes = (WIDTH,) * (DEPTH + 1) + (10,)
    params = models.mlp_init(jax.random.key(0), sizes)
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (BATCH, WIDTH))
    y = jax.random.randint(ky, (BATCH,), 0, 10)
    targets = [f"layer{i}/w" for i in range(1, DEPTH + 1)]
    return params, targets, x, y


def _loss(p, x, y):
    return models.cross_entropy(models.mlp_apply(p, x), y)


def _step(adapters, lr):
    """One Adam step; frozen params and the batch are arguments (no constant folding)."""
    opt = dl.optimizer(adapters, lr, 1e-2)

    def step(ad, state, params, x, y):
        g = jax.grad(lambda a: _loss(dl.merge(params, a), x, y))(ad)
        upd, state = opt.update(g, state, ad)
        return optax.apply_updates(ad, upd), state

    return jax.jit(step), opt.init(adapters)


def _peak_bytes(fn, *args) -> float:
    m = fn.lower(*args).compile().memory_analysis()
    return float(
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


def run() -> list[dict]:
    params, targets, x, y = _setup()
    lora = lt.lora_adapters(params, targets, R, 8.0, jax.random.key(2))
    deep = lt.deep_lora_adapters(
        params, targets, R, jax.random.key(3), loss_fn=lambda p: _loss(p, x, y)
    )
    f_lora, s_lora = _step(lora, 1e-3)
    f_deep, s_deep = _step(deep, 1e-2)
    a_lora, a_deep = (lora, s_lora, params, x, y), (deep, s_deep, params, x, y)
    t_lora = time_fn(f_lora, *a_lora, repeats=20)
    t_deep = time_fn(f_deep, *a_deep, repeats=20)
    # interleave a second round of each: the machine is shared
    t_lora = min(t_lora, time_fn(f_lora, *a_lora, repeats=20))
    t_deep = min(t_deep, time_fn(f_deep, *a_deep, repeats=20))
    m_lora = _peak_bytes(f_lora, *a_lora)
    m_deep = _peak_bytes(f_deep, *a_deep)
    setup = (
        f"float64 tanh MLP {WIDTH}x{DEPTH} hidden, 4 adapted {WIDTH}x{WIDTH} weights, r={R}, "
        f"batch {BATCH}, one jitted Adam step"
    )
    return [
        entry(
            "deeplora.step_time_over_lora",
            t_deep / t_lora,
            "ratio",
            target=1.10,
            better="lower",
            notes=f"{setup}; Deep LoRA {t_deep * 1e3:.2f} ms vs LoRA {t_lora * 1e3:.2f} ms, min "
            "of >=20 runs each after a warm-up call (compile excluded, block_until_ready), "
            "same run; paper (BERT-base, V100): 106/102 = 1.04",
        ),
        entry(
            "deeplora.peak_memory_over_lora",
            m_deep / m_lora,
            "ratio",
            target=None,
            better="lower",
            notes=f"{setup}; XLA compiled memory analysis of the step (arguments + outputs + "
            f"temporaries - aliased): Deep LoRA {m_deep / 2**20:.1f} MiB vs LoRA "
            f"{m_lora / 2**20:.1f} MiB; deterministic; paper: 12.648/12.526 GB = 1.01",
        ),
    ]


if __name__ == "__main__":
    for e in run():
        print(e)
