"""Hostile-input campaign (a measurement, not a unit test): prints counts of cases tried,
accepted, clean errors (exit 1/2 with a message, no traceback) and other outcomes.

    PYTHONPATH=src python tests/hostile_campaign.py [--seed 0] [--cases 200]

Covers CLI bad input (option values, --data lines, --resume from damaged training
checkpoints, plot metrics files and outputs) and hostile plugins (fake distributions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import textwrap
import uuid
import warnings
from pathlib import Path

from click.testing import CliRunner

from grapheme_core import GraphemeError
from grapheme_core.registry import Registry
from grapheme_train.cli import cli

FAST = ["--hidden", "4", "--heldout", "1", "-q", "--no-progress"]
OPTIONS = {
    "--hidden": ["0", "-1", "100000", "abc", "1e9", "99999999999999999999"],
    "--heldout": ["-1", "1000000000", "x"],
    "--lr": ["nan", "inf", "-1", "0", "abc", "1e400"],
    "--epochs": ["-1", "x", "1.5"],
    "--seed": ["-1", "x", "1e99"],
    "--dtype": ["float16", ""],
    "--optimizer": ["rmsprop", ""],
    "--backend": ["nosuch", "../x", "a b"],
    "--checkpoint": ["", "/", "/proc/no/such/dir/x.ckpt"],  # never a real device: a
    # regression would replace it
    "--metrics-out": ["", "/", "/proc/no/such/x.jsonl"],
    "--data": ["/dev/zero", "/", "/no/such/file.jsonl", "/dev/null"],
}
LINES = [
    "{", "[]", "null", "1", '"x"', '{"input": 1}', '{"input": "a"}', '{"answer": "a"}',
    '{"input": "a", "answer": ""}', '{"input": "a", "answer": "b", "domain": 5}',
    '{"input": "1+1", "answer": "2", "extra": 1}', '{"input": {"image": [[1e999]]}, "answer": "a"}',
    '{"input": "' + "9" * 5000 + '", "answer": "1"}', '{"input": "a", "answer": 1e999}',
    "[" * 10000 + "]" * 10000, '{"input": "\\ud800", "answer": "a"}',
]  # fmt: skip


def outcome(result) -> str:
    if "Traceback" in result.output or not (
        result.exception is None or isinstance(result.exception, SystemExit)
    ):
        return "other"
    if result.exit_code == 0:
        return "accepted"
    return "clean" if result.exit_code in (1, 2, 130) else "other"


def campaign_cli(rng: random.Random, cases: int, tmp: Path) -> dict[str, int]:
    runner = CliRunner()
    counts = {"tried": 0, "accepted": 0, "clean": 0, "other": 0}

    def run(args: list[str]) -> None:
        result = runner.invoke(cli, args)
        kind = outcome(result)
        counts["tried"] += 1
        counts[kind] += 1
        if kind != "clean":
            print(kind.upper() + ":", args, result.output[-300:], repr(result.exception))

    for option, values in OPTIONS.items():
        for value in values:
            run(["--epochs", "0", *FAST, option, value])
    for i in range(cases):
        data = tmp / f"d{i}.jsonl"
        line = rng.choice(LINES)
        if rng.random() < 0.5:
            raw = bytearray(line.encode())
            raw[rng.randrange(len(raw))] = rng.randrange(256)
            data.write_bytes(bytes(raw) + b"\n")
        else:
            data.write_text(line + "\n")
        run(["--epochs", "0", *FAST, "--data", str(data)])
    ckpt = tmp / "run.ckpt"
    runner.invoke(cli, ["--epochs", "1", *FAST, "--checkpoint", str(ckpt)])
    original = ckpt.read_bytes()
    for i in range(cases // 2):
        bad = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        path = tmp / f"r{i}.ckpt"
        path.write_bytes(bytes(bad))
        run(["--resume", str(path), "--epochs", "1", "-q", "--no-progress"])
    good = tmp / "m.jsonl"
    good.write_text(json.dumps({"epoch": 1, "loss": 1.0, "domain_loss": {}, "delta": None}) + "\n")
    for out in ["x.xyz", "/no/such/dir/x.png", "/", "/dev/null/x.png", ""]:
        run(["plot", str(good), "-o", out])
    for i in range(cases // 4):
        text = good.read_text()
        pos = rng.randrange(len(text) - 1)
        path = tmp / f"m{i}.jsonl"
        path.write_text(text[:pos] + rng.choice(['"', "x", "}", "1e999", "null", "["]) + text[pos:])
        run(["plot", str(path), "-o", str(tmp / "p.png")])
    return counts


PLUGINS = {
    "import_raises": "raise RuntimeError('boom')",
    "sys_exit": "import sys\nsys.exit(1)",
    "syntax_error": "def (",
    "hook_raises": "from grapheme_core import hookimpl\n@hookimpl\ndef grapheme_backends():\n"
    "    raise ValueError('x')",
    "hook_garbage": "from grapheme_core import hookimpl\n@hookimpl\ndef grapheme_backends():\n"
    "    return [1, 2]",
    "impostor_builtin": "from grapheme_backends.numpy_backend import NumpyBackend as N\n"
    "from grapheme_core import BackendSpec, hookimpl\n@hookimpl\ndef grapheme_backends():\n"
    "    return [BackendSpec(n, N) for n in ('numpy', 'torch', 'jax')]",
    "non_backend": "from grapheme_core import BackendSpec, hookimpl\n@hookimpl\n"
    "def grapheme_backends():\n    return [BackendSpec('nb', lambda: object())]",
    "factory_exits": "import sys\nfrom grapheme_core import BackendSpec, hookimpl\n@hookimpl\n"
    "def grapheme_backends():\n    return [BackendSpec('fx', lambda: sys.exit(2))]",
    "missing_module": "from grapheme_core import BackendSpec, hookimpl\n@hookimpl\n"
    "def grapheme_backends():\n    return [BackendSpec('mm', 'no_such_mod_zz:B')]",
    "factory_raises": "from grapheme_core import BackendSpec, hookimpl\n@hookimpl\n"
    "def grapheme_backends():\n    return [BackendSpec('fr', lambda: 1 / 0)]",
}


def campaign_plugins(tmp: Path) -> dict[str, int]:
    counts = {"tried": 0, "clean": 0, "other": 0}
    for stem, source in PLUGINS.items():
        site = tmp / f"site_{stem}"
        site.mkdir()
        tag = uuid.uuid4().hex[:6]
        module = f"hostile_{stem}_{tag}"
        (site / f"{module}.py").write_text(textwrap.dedent(source) + "\n")
        info = site / f"{stem}_{tag}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {stem}\nVersion: 0.1\n")
        entry = "builtin" if stem == "impostor_builtin" else stem
        (info / "entry_points.txt").write_text(f"[grapheme.backends]\n{entry} = {module}\n")
        sys.path.insert(0, str(site))
        counts["tried"] += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reg = Registry()
                rows = reg.list()
                ok = reg.get("numpy").__class__.__module__ == "grapheme_backends.numpy_backend"
                for row in rows:
                    if row.name not in ("numpy", "torch", "jax"):
                        with contextlib.suppress(GraphemeError):
                            reg.get(row.name)
            counts["clean" if ok else "other"] += 1
        except BaseException as exc:  # what escapes is what we count
            print("OTHER plugin", stem, type(exc).__name__, exc)
            counts["other"] += 1
        finally:
            sys.path.remove(str(site))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        print("cli:", campaign_cli(rng, args.cases, Path(tmp)))
        print("plugins:", campaign_plugins(Path(tmp)))


if __name__ == "__main__":
    main()
