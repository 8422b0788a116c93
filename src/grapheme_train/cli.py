"""``grapheme-train``: train the unified model; list backends; plot; conformance; bench.

Exit codes: 0 success, 1 training failure (non-finite loss, backend crash), 2 usage
errors (bad option, unknown or unavailable backend, malformed data, unusable
checkpoint), 130 interrupted (a checkpoint is saved first).
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import click

from grapheme_core import (
    BackendLoadError,
    BackendNotFoundError,
    CheckpointError,
    GraphemeError,
    IncompatibleBackendError,
    about,
    get_backend,
    list_backends,
)
from grapheme_core.registry import name_source, resolve_name
from grapheme_train import jsonout
from grapheme_train.ask import ask_command
from grapheme_train.bench import bench
from grapheme_train.bench_sparse import bench_sparse
from grapheme_train.checkpoint import load_training, restore_trainer
from grapheme_train.cli_guards import (
    NonEmptyPath,
    check_save_target,
    uninterruptible,
    within_limit,
)
from grapheme_train.conformance_cmd import conformance
from grapheme_train.data import by_domain
from grapheme_train.distributed.cli_support import ARGV_KEY, data_parallel_run
from grapheme_train.errors import DataError
from grapheme_train.evaluate_cmd import evaluate_command
from grapheme_train.loop import EpochLoop
from grapheme_train.metrics import MetricsWriter, evaluation_json
from grapheme_train.model import SharedAGIModel
from grapheme_train.modules import module_from_config
from grapheme_train.options import backend_options
from grapheme_train.progress import Progress, Status
from grapheme_train.report import epoch_header, epoch_row, evaluation_table, slice_table, table
from grapheme_train.session import (
    Launch,
    PreparedData,
    ResumeWithoutEpochsError,
    RunSettings,
    SettingsConflictError,
    continue_command,
    merge_launch,
    merge_settings,
    prepare_data,
)
from grapheme_train.show_cmd import show
from grapheme_train.trainer import DomainScore, EpochRecord, NonFiniteLossError, Trainer

__all__ = ["cli", "main"]

INTERRUPTED_CHECKPOINT = Path("grapheme-train-interrupted.ckpt")
"""Where Ctrl-C saves the model when no --checkpoint was given."""


class UsageProblem(click.ClickException):
    """Something wrong with what the user asked for: exit 2."""

    exit_code = 2


class TrainingFailure(click.ClickException):
    """Training could not go on: exit 1."""

    exit_code = 1


_GROUP_FLAGS = ("-h", "--help", "--version")
"""Options of the group itself (everything else that is not a command goes to ``train``)."""


class _DefaultGroup(click.Group):
    """A group whose default command is ``train``: ``grapheme-train --epochs 5`` trains."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGV_KEY] = list(args)  # what --nproc workers are started with
        if not args or (args[0] not in self.commands and args[0] not in _GROUP_FLAGS):
            args = ["train", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    about.version(),
    "--version",
    prog_name="grapheme-train",
    message=f"%(prog)s %(version)s ({about.DISTRIBUTION}, Python {sys.version.split()[0]})",
)
def cli() -> None:
    """Train grapheme's unified model (the default command) and related tools.

    `grapheme-train [OPTIONS]` is `grapheme-train train [OPTIONS]`; see
    `grapheme-train train --help`.
    """


# -- output -----------------------------------------------------------------------------


class _Console:
    """Human output: to stdout (stderr with --json), nothing with -q; keeps the bar clean."""

    def __init__(self, quiet: bool, to_stderr: bool, progress: Progress) -> None:
        self.stream: IO[str] | None = None if quiet else (sys.stderr if to_stderr else sys.stdout)
        self.progress = progress

    def __call__(self, *lines: str) -> None:
        if self.stream is None:
            return
        self.progress.clear()
        for line in lines:
            click.echo(line, file=self.stream)
        self.progress.redraw()


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:.2f} s"


# -- train ------------------------------------------------------------------------------


def _finite_lr(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number.", ctx, param)
    return value


def _check_writable(path: Path, option: str) -> None:
    """Usage error now, rather than a crash after the first epoch, if ``path`` can't be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise UsageProblem(f"{option} {path}: cannot write there ({exc})") from None


def _resolve_backend(launch: Launch, resume: Path | None = None) -> Any:
    try:
        return get_backend(launch.backend, **launch.backend_options())
    except (BackendNotFoundError, BackendLoadError, IncompatibleBackendError, ValueError) as exc:
        where = (
            f" (resuming {resume}: its backend, device and options are used unless given; "
            "--backend NAME picks another)"
            if resume is not None
            else ""
        )
        raise UsageProblem(f"{exc}{where}") from None


def _load_resume(resume: Path | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The checkpoint to resume (``None`` for a fresh run); unusable is a usage error."""
    if resume is None:
        return None
    try:
        return load_training(resume)
    except CheckpointError as exc:
        raise UsageProblem(str(exc)) from None


def _launch(
    given: Launch, loaded: tuple[dict[str, Any], Any] | None, resume: Path | None
) -> tuple[Launch, list[str]]:
    """The run's backend, device, options, metrics file and epochs (see merge_launch)."""
    saved = None if loaded is None else dict(loaded[0]["run"].get("launch") or {})
    try:
        return merge_launch(given, saved, resume)
    except ResumeWithoutEpochsError as exc:
        raise UsageProblem(str(exc)) from None


def _setup(
    backend: Any,
    resume: Path | None,
    loaded: tuple[dict[str, Any], dict[str, Any]] | None,
    given: dict[str, Any],
    epochs: int,
    data: Sequence[Path],
    trainer_options: Mapping[str, Any],
) -> tuple[RunSettings, PreparedData, Trainer]:
    """Settings, data and a trainer: fresh, or restored from ``resume`` (``loaded``).
    ``trainer_options`` (``hooks=``, ``shard=``) go to the :class:`Trainer`."""
    try:
        if resume is None or loaded is None:
            settings = merge_settings(given, epochs)
            prepared = prepare_data(data, settings)
            model = SharedAGIModel(prepared.modules, settings.model_config(), backend)
            trainer = Trainer(
                model,
                prepared.examples,
                settings.lr,
                batch_size=settings.batch_size,
                total_epochs=settings.epochs,
                seed=settings.seed,
                **trainer_options,
            )
            return settings, prepared, trainer
        meta, arrays = loaded
        settings = merge_settings(given, epochs, meta["run"])
        modules = [module_from_config(m) for m in meta["model"]["modules"]]
        prepared = prepare_data(data, settings, modules)
        if prepared.fingerprint != meta["run"].get("fingerprint"):
            raise UsageProblem(
                f"{resume}: the training data differ from the checkpoint's; resume with the "
                "same --data files"
            )
        trainer = restore_trainer(
            meta, arrays, prepared.examples, backend, resume, **trainer_options
        )
        return settings, prepared, trainer
    except (DataError, SettingsConflictError, CheckpointError) as exc:
        raise UsageProblem(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        if resume is not None:
            raise UsageProblem(f"{resume}: unusable checkpoint ({exc})") from None
        raise


def _log_epochs(total: int, log_every: int) -> int:
    return log_every if log_every > 0 else max(1, math.ceil(total / 20))


def _header(
    say: _Console,
    backend: Any,
    device: str | None,
    settings: RunSettings,
    trainer: Trainer,
    prepared: PreparedData,
) -> None:
    model = trainer.model
    sizes = model.describe()
    say(
        f"grapheme-train: backend {backend.name}"
        + (f" ({device})" if device else "")
        + f", {settings.dtype}, seed {settings.seed}, {settings.optimizer} lr {settings.lr:g}, "
        f"{settings.epochs} epoch{'s' if settings.epochs != 1 else ''}",
        f"model: {sizes['inputs']} inputs -> {sizes['encoder']} encoder -> {sizes['hidden']} "
        f"shared trunk ({sizes['trunk_layers']} layers) -> "
        f"{sizes['outputs']} outputs; {sizes['edges']} edges, {sizes['parameters']} parameters "
        f"(embedding {model.embedding.vocab_size}x{model.embedding.dim})",
        "",
    )
    counts = {d: len(v) for d, v in by_domain(trainer.examples).items()}
    say("brain slices", *slice_table(model, counts), "")
    for note in prepared.notes:
        say(f"note: {note}")


def _evaluate(trainer: Trainer, prepared: PreparedData) -> dict[str, dict[str, DomainScore]]:
    return {
        "train": trainer.evaluate(prepared.examples, prepared.router),
        "heldout": trainer.evaluate(prepared.heldout, prepared.router),
    }


def _topology_hook(
    topology: str | None,
    density: float | None,
    update_every: int | None,
    seed: int,
    loaded: tuple[dict[str, Any], dict[str, Any]] | None,
) -> Any:
    """The --topology hook (see grapheme_train.topology_hook), or None for a dense trunk.
    A resumed run without --topology continues the checkpoint's topology mode."""
    from .topology_hook import build_topology_hook

    saved = (loaded[0].get("trainer", {}).get("hooks") or {}).get("topology") if loaded else None
    if topology is None and isinstance(saved, dict):
        topology = saved.get("mode")
        density = saved.get("density") if density is None else density
        update_every = saved.get("update_every") if update_every is None else update_every
    try:
        return build_topology_hook(topology, density, update_every, seed=seed)
    except (TypeError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None


@cli.command()
@click.option(
    "--backend", metavar="NAME", help="Compute backend [default: $GRAPHEME_BACKEND or numpy]."
)
@click.option("--device", metavar="DEVICE", help="Device for the backend, e.g. cpu, cuda, cuda:1.")
@click.option(
    "--option",
    "backend_opts",
    multiple=True,
    metavar="KEY=VALUE",
    callback=backend_options,
    help="Backend factory option (repeatable), e.g. --option num_threads=4.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    help="Train until this epoch [default: 10]; required with --resume (which continues up to it).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    callback=_finite_lr,
    metavar="RATE",
    help="Peak learning rate of the cosine schedule [default: 0.01].",
)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), help="[default: adam]")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help="Seed of parameters and held-out data [default: 0].",
)
@click.option(
    "--hidden",
    type=click.IntRange(min=1),
    callback=within_limit("hidden"),
    help="Nodes per shared trunk layer [default: 128].",
)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="[default: float32]")
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    metavar="FILE.jsonl",
    help="Extra training examples (repeatable).",
)
@click.option(
    "--heldout",
    type=click.IntRange(min=0),
    callback=within_limit("heldout"),
    metavar="N",
    help="Evaluate at most N held-out examples per domain [default: all of the split].",
)
@click.option(
    "--train-limit",
    type=click.IntRange(min=1),
    metavar="N",
    envvar="GRAPHEME_TRAIN_LIMIT",
    help="Train on at most N examples per domain (a seeded sample; for quick runs) "
    "[default: $GRAPHEME_TRAIN_LIMIT, else all].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    metavar="B",
    help="Rows per minibatch, shared equally by the brains [default: 256].",
)
@click.option(
    "--checkpoint",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Save a checkpoint here after every epoch (atomically).",
)
@click.option(
    "--resume",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Continue from this checkpoint (and keep saving to it), on its backend, device, "
    "options and metrics file unless given.",
)
@click.option(
    "--metrics-out",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    metavar="FILE.jsonl",
    help="Write one JSON object per epoch, then the evaluation.",
)
@click.option(
    "--log-every",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Print every Nth epoch (0: about 20 rows).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Progress bar (only on a terminal).",
)
@click.option("-q", "--quiet", is_flag=True, help="No tables (errors and --json still print).")
@click.option(
    "--topology",
    type=click.Choice(["dense", "static", "set", "rigl", "prune"]),
    help="Sparse trunk: fixed random mask, SET, RigL or magnitude pruning [default: dense].",
)
@click.option(
    "--density", type=click.FloatRange(0, 1, min_open=True), help="Trunk edges kept (0-1)."
)
@click.option(
    "--update-every", type=click.IntRange(min=1), metavar="K", help="Steps between rewirings."
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Data-parallel workers on this machine (loopback); see docs/distributed.md.",
)
def train(
    backend: str | None,
    device: str | None,
    backend_opts: dict[str, Any],
    epochs: int | None,
    lr: float | None,
    optimizer: str | None,
    seed: int | None,
    hidden: int | None,
    dtype: str | None,
    data: tuple[Path, ...],
    heldout: int | None,
    train_limit: int | None,
    batch_size: int | None,
    checkpoint: Path | None,
    resume: Path | None,
    metrics_out: Path | None,
    log_every: int,
    as_json: bool,
    progress: bool,
    quiet: bool,
    topology: str | None,
    density: float | None,
    update_every: int | None,
    nproc: int,
) -> None:
    """Train the unified model (math, text, timeseries, vision) on one shared DagNN."""
    # --nproc N / torchrun: None in an ordinary run, this rank's share of the work in a worker
    worker = data_parallel_run(nproc, Trainer, device, connected=True)
    writer = worker is None or worker.is_writer  # only rank 0 writes checkpoints and metrics
    started = time.perf_counter()
    given = {
        "lr": lr, "optimizer": optimizer, "seed": seed, "hidden": hidden,
        "dtype": dtype, "heldout": heldout, "train_limit": train_limit,
        "batch_size": batch_size,
    }  # fmt: skip
    loaded = _load_resume(resume)
    given_launch = Launch(
        backend, device, backend_opts, None if metrics_out is None else str(metrics_out), epochs
    )
    launch, notes = _launch(given_launch, loaded, resume)
    backend_obj = _resolve_backend(launch, resume)
    launch = attrs.evolve(launch, backend=backend_obj.name)
    epochs, device = int(launch.epochs or 0), launch.device
    metrics_out = None if launch.metrics_out is None else Path(launch.metrics_out)
    check_save_target(checkpoint or resume, "--checkpoint" if checkpoint else "--resume")
    topology_hook = _topology_hook(topology, density, update_every, seed or 0, loaded)
    options = {
        "hooks": [] if topology_hook is None else [topology_hook],
        "shard": None if worker is None else worker.shard,
    }
    settings, prepared, trainer = _setup(backend_obj, resume, loaded, given, epochs, data, options)
    if worker is not None:  # all-reduce first, so that topology rules see averaged gradients
        trainer.hooks = [*worker.hooks(trainer.model), *trainer.hooks]
    save_to = (checkpoint or resume) if writer else None
    metrics_out = metrics_out if writer else None
    if save_to and trainer.epoch < epochs:
        _check_writable(save_to, "--checkpoint" if checkpoint else "--resume")
    bar = Progress(max(epochs - trainer.epoch, 0), enabled=progress and not quiet)
    say = _Console(quiet, as_json, bar)
    _header(say, backend_obj, device, settings, trainer, prepared)
    if notes:
        say(*(f"note: {n}" for n in notes), "")

    first_epoch = trainer.epoch
    every = _log_epochs(epochs, log_every)

    def on_epoch(record: EpochRecord) -> None:
        if record.epoch % every == 0 or record.epoch in (first_epoch + 1, epochs):
            say(epoch_row(record, topology_hook is not None))
        bar.update(record.epoch - first_epoch, record.loss)

    with contextlib.ExitStack() as stack:
        metrics = None
        if metrics_out is not None:
            try:
                metrics = stack.enter_context(MetricsWriter(metrics_out, trainer.history))
            except OSError as exc:
                raise UsageProblem(f"--metrics-out {metrics_out}: cannot write ({exc})") from None
        loop = EpochLoop(
            trainer,
            epochs,
            {**settings.run_meta(prepared.fingerprint), "launch": launch.to_json()},
            save_to=save_to,
            metrics=metrics,
            on_epoch=on_epoch,
        )
        if first_epoch >= epochs:
            say(f"nothing to train: at epoch {first_epoch}, --epochs is {epochs}", "")
        else:
            if first_epoch:
                say(f"resuming from {resume} at epoch {first_epoch}")
            say(*epoch_header(topology_hook is not None))
            _run_loop(loop, bar, settings, first_epoch, launch, data, resume)
            say("")
        evaluation = _evaluate(trainer, prepared)
        _check_finite_evaluation(loop, evaluation, settings, first_epoch, resume)
        if metrics is not None:
            try:
                metrics.write_evaluation(evaluation)
            except OSError as exc:
                raise TrainingFailure(f"--metrics-out {metrics_out}: cannot write: {exc}") from None
    _report(say, trainer, prepared, evaluation)
    total_seconds = time.perf_counter() - started
    trained = trainer.epoch - first_epoch
    rate = trained * len(prepared.examples) / loop.seconds if loop.seconds > 0 else 0.0
    say(
        f"time: {_fmt_seconds(total_seconds)} in all, {_fmt_seconds(loop.seconds)} training "
        f"{trained} epoch{'s' if trained != 1 else ''} ({rate:.0f} examples/s)"
    )
    if as_json:
        summary = _summary(backend_obj, device, settings, trainer, prepared, evaluation)
        summary.update(
            options=dict(launch.options),
            metrics_out=launch.metrics_out,
            seconds=total_seconds,
            train_seconds=loop.seconds,
            examples_per_second=rate,
            checkpoint=None if loop.save_to is None else str(loop.save_to),
        )
        click.echo(jsonout.dumps(summary))


def _run_loop(
    loop: EpochLoop,
    bar: Progress,
    settings: RunSettings,
    first_epoch: int,
    launch: Launch,
    data: Sequence[Path],
    resume: Path | None = None,
) -> None:
    """Run the epochs; map Ctrl-C to a saved checkpoint and exit 130, faults to exit 1."""
    try:
        loop.run()
    except KeyboardInterrupt:
        bar.close()
        try:
            path = uninterruptible(
                lambda: loop.save_last_good(loop.save_to or INTERRUPTED_CHECKPOINT)
            )
        except OSError as exc:
            click.echo(
                f"interrupted after epoch {loop.good_epoch}; the model could not be saved: {exc}",
                err=True,
            )
            click.get_current_context().exit(130)
        click.echo(
            f"interrupted: saved the model after epoch {loop.good_epoch} to {path}; continue "
            f"with\n  {continue_command(path, launch, data)}",
            err=True,
        )
        click.get_current_context().exit(130)
    except NonFiniteLossError as exc:
        bar.close()
        kept = _kept(loop, first_epoch, resume)
        raise TrainingFailure(
            f"training stopped: {exc}; {kept}. Try a smaller --lr (now {settings.lr:g})."
        ) from None
    except GraphemeError as exc:
        bar.close()
        raise TrainingFailure(f"training failed: {exc}") from None
    except OSError as exc:  # a checkpoint or the metrics file could not be written
        bar.close()
        raise TrainingFailure(
            f"training stopped after epoch {loop.good_epoch}: cannot write: {exc}"
        ) from None
    bar.close()


def _kept(loop: EpochLoop, first_epoch: int, resume: Path | None) -> str:
    """What a failed run leaves behind, for its error message."""
    if loop.save_to is not None and loop.wrote:
        return f"the last good checkpoint (epoch {loop.good_epoch}) is kept at {loop.save_to}"
    if resume is not None:
        return f"the checkpoint resumed from (epoch {first_epoch}) is kept at {resume}"
    return "no checkpoint was written by this run (use --checkpoint PATH)"


def _check_finite_evaluation(
    loop: EpochLoop,
    evaluation: dict[str, dict[str, DomainScore]],
    settings: RunSettings,
    first_epoch: int,
    resume: Path | None,
) -> None:
    """The trained model's loss on the training set must be finite (exit 1 otherwise).

    The last epoch's update can leave finite parameters whose outputs overflow; no later
    epoch would notice, so the evaluation does (and no NaN reaches the JSON outputs).
    """
    for domain, score in evaluation["train"].items():
        if score.loss is not None and not math.isfinite(score.loss):
            epoch = loop.trainer.epoch
            loop.discard_last()
            kept = _kept(loop, first_epoch, resume)
            raise TrainingFailure(
                f"training stopped: the {domain} loss of the model after epoch {epoch} is not "
                f"finite ({score.loss}); {kept}. Try a smaller --lr (now {settings.lr:g})."
            )


def _report(
    say: _Console,
    trainer: Trainer,
    prepared: PreparedData,
    evaluation: dict[str, dict[str, DomainScore]],
) -> None:
    history = trainer.history
    if history:
        first, last = history[0], history[-1]
        ratio = last.loss / first.loss if first.loss > 0 else float("nan")
        say(
            f"loss: epoch 1 {first.loss:.4e} -> epoch {last.epoch} {last.loss:.4e} "
            f"({100 * ratio:.2f}% of the first epoch)"
        )
    say(
        "",
        f"training set ({len(prepared.examples)} examples)",
        *evaluation_table(evaluation["train"]),
    )
    say(
        "",
        f"held-out set ({len(prepared.heldout)} examples, seed-generated)",
        *evaluation_table(evaluation["heldout"]),
        "",
    )


def _summary(
    backend: Any,
    device: str | None,
    settings: RunSettings,
    trainer: Trainer,
    prepared: PreparedData,
    evaluation: dict[str, dict[str, DomainScore]],
) -> dict[str, Any]:
    history = trainer.history
    first = history[0].loss if history else None
    last = history[-1].loss if history else None
    return {
        "backend": backend.name,
        "device": device,
        "epochs": trainer.epoch,
        "seed": settings.seed,
        "optimizer": settings.optimizer,
        "lr": settings.lr,
        "dtype": settings.dtype,
        "examples": {"train": len(prepared.examples), "heldout": len(prepared.heldout)},
        "model": trainer.model.describe(),
        "slices": {
            b: {
                "inputs": [s.input_range.start, s.input_range.stop],
                "outputs": [s.output_range.start, s.output_range.stop],
            }
            for b, s in trainer.model.slices.items()
        },
        "first_loss": first,
        "final_loss": last,
        "loss_ratio": (last / first) if first and last is not None else None,
        "final_domain_loss": dict(history[-1].domain_loss) if history else None,
        "gradient_share": trainer.gradient_share(),
        "notes": list(prepared.notes),
        "evaluation": evaluation_json(evaluation),
    }


# -- backends ---------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def backends(as_json: bool) -> None:
    """List the compute backends the installed plugins provide, with their status.

    The default backend (what runs without --backend) is marked with `*`: it is
    $GRAPHEME_BACKEND when that is set, numpy otherwise.
    """
    rows = list_backends()
    default = resolve_name()
    source = name_source() or "built-in default"
    if as_json:
        click.echo(
            jsonout.dumps(
                {
                    "default": default,
                    "default_from": source,
                    "backends": [
                        {
                            "name": r.name,
                            "status": r.status,
                            "plugin": r.plugin,
                            "description": r.description,
                            "api_version": r.api_version,
                            "detail": r.detail,
                            "default": r.name == default,
                        }
                        for r in rows
                    ],
                }
            )
        )
        return
    lines = table(
        ["backend", "status", "plugin", "description"],
        [
            [r.name + (" *" if r.name == default else ""), r.status, r.plugin, r.description or "-"]
            for r in rows
        ],
        left=(0, 1, 2, 3),
    )
    click.echo("\n".join(lines))
    for r in rows:
        if r.detail:
            click.echo(f"  {r.name}: {r.detail}")
    known = any(r.name == default for r in rows)
    click.echo(
        f"* default: {default} ({source})"
        + ("" if known else "; no installed plugin provides it, so runs without --backend fail")
    )


# -- plot -------------------------------------------------------------------------------


@cli.command()
@click.argument("metrics", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("loss.png"),
    show_default=True,
    help="Image to write.",
)
def plot(metrics: Path, output: Path) -> None:
    """Draw the per-domain loss curves of a --metrics-out file.

    Needs matplotlib: pip install 'grapheme-dagnn[plot]'.
    """
    from grapheme_train.plot import PlotOutputError, PlotUnavailableError, plot_metrics

    line = Status("plot")
    line.step(f"drawing {metrics} into {output} (loading matplotlib)")
    try:
        path = plot_metrics(metrics, output)
    except (DataError, PlotUnavailableError, PlotOutputError) as exc:
        raise UsageProblem(str(exc)) from None
    finally:
        line.close()
    click.echo(f"wrote {path}")


cli.add_command(conformance)
cli.add_command(bench)
cli.add_command(show)
cli.add_command(bench_sparse)
cli.add_command(ask_command)
cli.add_command(evaluate_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``grapheme-train``); exits with the documented codes."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="grapheme-train",
            standalone_mode=False,
        )
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C outside the training loop (which saves and exits 130)
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
