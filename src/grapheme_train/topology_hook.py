"""``grapheme-train --topology``: a trainer hook running a topology rule on the shared trunk.

The hook follows the trainer-hook interface: ``on_gradients(trainer, step)`` (after every
brain's backward, before the optimizer step), ``on_epoch_end(trainer, epoch, record)``
(extra metrics: edge count and trunk density) and ``state_dict``/``load_state_dict``
(saved in the training checkpoint so that --resume continues the schedule exactly).

It edits ``trainer.model.dag`` between the layers of ``trainer.model.trunk_layers()``:

* ``dense``: nothing (no hook is built);
* ``static``: at the first step, random edges are removed down to ``density`` per layer
  pair, and the mask never changes;
* ``set`` / ``rigl``: the same random start, then every ``update_every`` steps SET or
  RigL rewires ``drop_fraction`` of the edges (cosine decay to 0 at ``end_step`` if given);
* ``prune``: starts dense and prunes by magnitude to ``density`` on a cubic schedule
  that ends at ``end_step`` (default ``20 * update_every``).
"""

from __future__ import annotations

from typing import Any

from grapheme_core.topology import SET, MagnitudePrune, Region, RigL, TopologyRule, sparsify

MODES = ("dense", "static", "set", "rigl", "prune")


class TopologyHook:
    """Trainer hook applying one topology mode to the model's shared trunk."""

    name = "topology"

    def __init__(
        self,
        mode: str,
        density: float,
        *,
        update_every: int = 100,
        drop_fraction: float = 0.3,
        end_step: int | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in MODES or mode == "dense":
            raise ValueError(f"mode must be one of {', '.join(MODES[1:])}; got {mode!r}")
        if not 0.0 < float(density) <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        if int(update_every) < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        self.mode = mode
        self.density = float(density)
        self.update_every = int(update_every)
        self.seed = int(seed)
        self._trainer: Any = None
        self.sparsified = mode == "prune"  # prune starts from the dense trunk
        self.last_report: dict[str, Any] | None = None
        layers = self._layers
        self.rule: TopologyRule | None
        if mode == "set":
            self.rule = SET(
                drop_fraction=drop_fraction, end_step=end_step, layers=layers, seed=seed
            )
        elif mode == "rigl":
            self.rule = RigL(
                drop_fraction=drop_fraction, end_step=end_step, layers=layers, seed=seed
            )
        elif mode == "prune":
            self.rule = MagnitudePrune(
                target_density=self.density,
                end_step=end_step or 20 * self.update_every,
                layers=layers,
                seed=seed,
            )
        else:
            self.rule = None

    def _layers(self) -> list[Any]:
        model = self._trainer.model
        if not callable(getattr(model, "trunk_layers", None)):
            raise TypeError(
                f"--topology {self.mode} needs a model with trunk_layers() (the node ids of "
                f"the shared trunk's layers); {type(model).__name__} has none"
            )
        return list(model.trunk_layers())

    # -- the hook interface -------------------------------------------------------------
    def on_gradients(self, trainer: Any, step: int) -> None:
        """Sparsify once (static/set/rigl), then run the rule every ``update_every`` steps."""
        self._trainer = trainer
        dag = trainer.model.dag
        if not self.sparsified:
            sparsify(dag, self.density, layers=self._layers(), seed=self.seed)
            self.sparsified = True
            return  # the graph changed after this step's backward: RigL waits a step
        if self.rule is not None and step > 0 and step % self.update_every == 0:
            self.last_report = self.rule.update(dag, step).as_dict()

    def on_epoch_end(self, trainer: Any, epoch: int, record: Any) -> dict[str, Any]:
        """``edges`` of the whole model and ``density`` of the trunk's layer pairs."""
        self._trainer = trainer
        dag = trainer.model.dag
        density = Region(dag, self._layers()).density()
        return {"edges": dag.edge_count, "density": density}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able: the mode, whether the trunk was sparsified, the rule's state."""
        return {
            "mode": self.mode,
            "density": self.density,
            "update_every": self.update_every,
            "sparsified": self.sparsified,
            "rule": None if self.rule is None else self.rule.state_dict(),
            "last_report": self.last_report,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the same ``--topology`` is required)."""
        if state.get("mode") != self.mode:
            raise ValueError(
                f"the checkpoint was trained with --topology {state.get('mode')}, "
                f"not {self.mode}; resume with the same --topology"
            )
        self.sparsified = bool(state["sparsified"])
        self.last_report = state.get("last_report")
        if self.rule is not None and state.get("rule") is not None:
            self.rule.load_state_dict(state["rule"])


def build_topology_hook(
    topology: str | None,
    density: float | None,
    update_every: int | None,
    *,
    seed: int = 0,
) -> TopologyHook | None:
    """The hook for the train command's ``--topology/--density/--update-every`` (``None``
    for dense, the default). Raises ``ValueError`` naming the flag that is wrong."""
    if topology in (None, "dense"):
        if density not in (None, 1.0):
            raise ValueError("--density needs --topology static, set, rigl or prune")
        if update_every is not None:
            raise ValueError("--update-every needs --topology set, rigl or prune")
        return None
    if density is None:
        raise ValueError(f"--topology {topology} needs --density D (the fraction kept, 0-1)")
    return TopologyHook(topology, density, update_every=update_every or 100, seed=seed)


def attach(trainer: Any, hook: TopologyHook | None) -> None:
    """Add ``hook`` to a trainer that runs hooks (a ``hooks`` list); a trainer without
    hook support gets a clear error instead of silently training dense."""
    if hook is None:
        return
    hooks = getattr(trainer, "hooks", None)
    if not isinstance(hooks, list | tuple):
        raise TypeError(
            f"--topology {hook.mode} needs a trainer with hook support (Trainer(hooks=...)); "
            "this grapheme's trainer has none"
        )
    trainer.hooks = [*hooks, hook]
