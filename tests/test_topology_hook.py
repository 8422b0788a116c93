"""The --topology trainer hook, driven by a minimal trainer that follows the hook interface."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from grapheme_core import DagNN
from grapheme_core.topology import Region, layered_dag
from grapheme_train.cli import cli
from grapheme_train.topology_hook import TopologyHook, attach, build_topology_hook

SIZES = [6, 20, 20, 4]


class FakeModel:
    def __init__(self) -> None:
        self.dag, layers = layered_dag(SIZES, 1.0, optimizer="adam", seed=1)
        self._trunk = layers[1:3]  # the hidden layers

    def trunk_layers(self) -> list[np.ndarray]:
        return self._trunk


class FakeTrainer:
    """Runs hooks the way the trainer-hook interface says."""

    def __init__(self, hooks=()) -> None:
        self.model = FakeModel()
        self.hooks = list(hooks)
        self.step = 0

    def run(self, steps: int) -> list[dict]:
        dag = self.model.dag
        rows = []
        for _ in range(steps):
            rng = np.random.default_rng(self.step)
            x, t = rng.normal(size=(8, SIZES[0])), rng.normal(size=(8, SIZES[-1]))
            dag.backward_accumulate(dag.forward(x) - t)
            for h in self.hooks:
                h.on_gradients(self, self.step)
            dag.step(0.01)
            dag.zero_grad()
            self.step += 1
            rows.append(
                {k: v for h in self.hooks for k, v in h.on_epoch_end(self, 0, None).items()}
            )
        return rows


def _trunk_density(trainer) -> float:
    return Region(trainer.model.dag, trainer.model.trunk_layers()).density()


@pytest.mark.parametrize("mode", ["static", "set", "rigl"])
def test_sparse_modes_hold_the_density(mode):
    hook = TopologyHook(mode, 0.25, update_every=2, seed=3)
    trainer = FakeTrainer([hook])
    rows = trainer.run(1)
    assert rows[0]["density"] == pytest.approx(0.25)
    edges = trainer.model.dag.edge_count
    before = trainer.model.dag.edges()[0].copy()
    rows = trainer.run(5)
    assert all(r["edges"] == edges for r in rows)
    assert all(r["density"] == pytest.approx(0.25) for r in rows)
    changed = not np.array_equal(trainer.model.dag.edges()[0], before)
    assert changed == (mode != "static")
    if mode != "static":
        assert hook.last_report["removed"] == hook.last_report["added"] > 0


def test_prune_reaches_the_density_at_end_step():
    hook = TopologyHook("prune", 0.1, update_every=2, end_step=8)
    trainer = FakeTrainer([hook])
    rows = trainer.run(10)
    assert rows[0]["density"] == 1.0
    assert [r["edges"] for r in rows] == sorted((r["edges"] for r in rows), reverse=True)
    assert rows[-1]["density"] == pytest.approx(0.1, abs=0.005)


def test_hook_state_resumes_exactly():
    def make():
        return TopologyHook("set", 0.3, update_every=2, seed=5)

    whole = FakeTrainer([make()])
    whole.run(8)
    first = FakeTrainer([make()])
    first.run(4)
    meta, arrays = first.model.dag.state()
    state = json.loads(json.dumps(first.hooks[0].state_dict()))
    second = FakeTrainer([make()])
    second.model.dag = DagNN.from_state(meta, arrays)
    second.hooks[0].load_state_dict(state)
    second.step = 4
    second.run(4)
    for a, b in zip(whole.model.dag.edges(), second.model.dag.edges(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        whole.model.dag.get_parameters()["weight"], second.model.dag.get_parameters()["weight"]
    )
    with pytest.raises(ValueError, match="same --topology"):
        TopologyHook("rigl", 0.3).load_state_dict(state)


def test_building_and_attaching():
    assert build_topology_hook(None, None, None) is None
    assert build_topology_hook("dense", None, None) is None
    hook = build_topology_hook("rigl", 0.2, 7)
    assert hook.update_every == 7 and hook.density == 0.2
    with pytest.raises(ValueError, match="needs --density"):
        build_topology_hook("set", None, None)
    with pytest.raises(ValueError, match="--density needs --topology"):
        build_topology_hook(None, 0.5, None)
    with pytest.raises(ValueError, match="--update-every needs --topology"):
        build_topology_hook("dense", None, 5)
    trainer = FakeTrainer()
    attach(trainer, hook)
    assert trainer.hooks == [hook]

    class NoHooks:
        pass

    with pytest.raises(TypeError, match="hook support"):
        attach(NoHooks(), hook)


def test_model_without_trunk_layers_is_a_clear_error():
    hook = TopologyHook("static", 0.5)
    trainer = FakeTrainer([hook])
    trainer.model.trunk_layers = None
    with pytest.raises(TypeError, match="trunk_layers"):
        trainer.run(1)


def test_cli_rejects_density_without_topology():
    result = CliRunner().invoke(cli, ["train", "--density", "0.5", "--epochs", "0"])
    assert result.exit_code != 0
    assert "--density needs --topology" in result.output


def test_plot_draws_density_and_edges_of_a_topology_run(tmp_path) -> None:
    """A --topology run's epoch table and metrics carry edges and density per epoch; `plot`
    draws them in a second panel (the image is taller than a dense run's single panel)."""
    import struct

    pytest.importorskip("matplotlib")

    def run(name: str, *extra: str) -> tuple[list[dict], int]:
        metrics = tmp_path / f"{name}.jsonl"
        args = ["--train-limit", "20", "--epochs", "2", "--hidden", "8", "--heldout", "0"]
        result = CliRunner().invoke(cli, [*args, *extra, "--metrics-out", str(metrics)])
        assert result.exit_code == 0, result.output
        header = next(line for line in result.output.splitlines() if line.startswith("epoch "))
        assert header.split()[-2:] == (["edges", "density"] if extra else ["total", "delta"])
        image = tmp_path / f"{name}.png"
        assert CliRunner().invoke(cli, ["plot", str(metrics), "-o", str(image)]).exit_code == 0
        lines = [json.loads(line) for line in metrics.read_text().splitlines()]
        height = struct.unpack(">I", image.read_bytes()[20:24])[0]  # PNG IHDR height
        return [r for r in lines if "epoch" in r], height

    sparse, tall = run("prune", "--topology", "prune", "--density", "0.5", "--update-every", "1")
    dense, short = run("dense")
    assert all("density" in r and "edges" in r for r in sparse)
    assert sparse[-1]["edges"] < sparse[0]["edges"] or sparse[-1]["density"] < 1.0
    assert not any("density" in r for r in dense)
    assert tall > short
