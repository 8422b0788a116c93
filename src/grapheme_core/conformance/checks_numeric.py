"""Numerics the core checks never reach: saturated activations, clipping by factors that
are not powers of two, and the norms and clipping of 2-D (Embedding) gradients."""

from __future__ import annotations

import numpy as np

from ..embedding import Embedding
from ..types import Activation
from . import graphs
from .checks import Context, _forward_vs_oracle, _grads_vs_oracle, check
from .graphs import Case
from .tolerances import FORWARD, GRAD, compare, require

#: pre-activations the saturation check reaches, per dtype (|z| >= 60 / >= 400)
SATURATION = {
    "float32": np.array([-1000.0, -100.0, -60.0, 60.0, 100.0, 1000.0]),
    "float64": np.array([-5000.0, -750.0, -400.0, 400.0, 750.0, 5000.0]),
}


@check(
    "numeric.saturation",
    "pre-activations |z| >= 60 (float32) and >= 400 (float64): finite, equal to the oracle",
)
def _saturation(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        z = SATURATION[dtype]
        gain = float(np.min(np.abs(z)))  # saturated outputs (+-1, 0/1) times this saturate again
        dag = ctx.dag(dtype)
        x = dag.add_input()
        src, dst, w = [], [], []
        for act in Activation:
            h = dag.add_hidden(act)
            o = dag.add_output(act)
            o2 = dag.add_output(act)
            src += [x, h, h, x]
            dst += [h, o, o2, o2]
            w += [1.0, gain * 1.25, -gain * 1.5, 0.5]
        dag.add_edges(src, dst, w)
        dag.set_parameters({"bias": np.where(np.isin(dag.nodes(), dag.input_nodes), 0.0, 0.25)})
        xs = graphs._round(z[:, None], dtype)
        label = f"saturated activations (|z| up to {np.max(np.abs(z)):g})"
        y = _forward_vs_oracle(label, dag, xs)
        require(bool(np.all(np.isfinite(y))), f"{label} [{dtype}]: forward produced NaN/inf")
        probe = graphs._round(np.linspace(-1, 1, xs.shape[0] * len(dag.output_nodes)), dtype)
        probe = probe.reshape(xs.shape[0], -1)
        dag.zero_grad()
        dag.forward(xs)
        gx = dag.backward_accumulate(probe)
        grads = dag.get_gradients()
        for key, value in (*grads.items(), ("input", gx)):
            require(
                bool(np.all(np.isfinite(value))),
                f"{label} [{dtype}]: {key} gradients contain NaN/inf",
            )
        _grads_vs_oracle(label, Case(label, dag, xs), xs, probe, gx)


#: clipping targets as fractions of the gradient norm: none is a power of two
CLIP_FRACTIONS = (0.37, 1 / 3, 0.9)


@check("grad.clip_factor", "clip_gradients by factors that are not powers of two (0.37, 1/3, 0.9)")
def _clip_factor(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        case = ctx.case("random_medium", dtype)
        dag = case.dag
        for frac in CLIP_FRACTIONS:
            dag.zero_grad()
            dag.forward(case.x)
            dag.backward_accumulate(case.probe())
            before = {k: v.astype(np.float64) for k, v in dag.get_gradients().items()}
            norm = np.sqrt(sum(np.sum(v**2) for v in before.values()))
            target = norm * frac
            returned = dag.clip_gradients(target)
            tol = FORWARD[dtype]
            compare(
                f"[{dtype}] clip_gradients({frac:.4g} x norm) return value", returned, norm, tol
            )
            factor = target / (norm + 1e-12)
            for key, v in dag.get_gradients().items():
                compare(
                    f"[{dtype}] {key} gradients after clipping to {frac:.4g} x their norm",
                    v,
                    before[key] * factor,
                    GRAD[dtype],
                )
            compare(
                f"[{dtype}] gradient_norm() after clipping to {frac:.4g} x norm",
                dag.gradient_norm(),
                target,
                tol,
            )


@check("embedding.norm_clip", "Embedding gradient_norm and clip_gradients on the 2-D table")
def _embedding_norm_clip(ctx: Context) -> None:
    for dtype in ctx.dtypes:
        emb = Embedding(24, 5, backend=ctx.backend, seed=3, dtype=dtype)
        rng = np.random.default_rng(6)
        idx = np.array([0, 3, 3, 7, 23, 11, 3])
        g = graphs._round(rng.uniform(-1, 1, (idx.size, 5)), dtype)
        emb.backward(idx, g)
        before = emb.get_gradients()["table"].astype(np.float64)
        norm = float(np.sqrt(np.sum(before**2)))
        tol = FORWARD[dtype]
        compare(
            f"[{dtype}] Embedding.gradient_norm() of a [24, 5] gradient table",
            emb.gradient_norm(),
            norm,
            tol,
        )
        for frac in (2.0, 0.37):
            returned = emb.clip_gradients(norm * frac)
            compare(
                f"[{dtype}] Embedding.clip_gradients({frac:g} x norm) return value",
                returned,
                norm,
                tol,
            )
            want = before * min(1.0, norm * frac / (norm + 1e-12))
            compare(
                f"[{dtype}] Embedding gradients after clip_gradients({frac:g} x norm)",
                emb.get_gradients()["table"],
                want,
                GRAD[dtype],
            )
        compare(
            f"[{dtype}] Embedding.gradient_norm() after clipping to 0.37 x norm",
            emb.gradient_norm(),
            norm * 0.37,
            tol,
        )
