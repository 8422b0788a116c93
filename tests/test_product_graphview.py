"""DagNN.summary / to_dot / to_networkx, ``grapheme-train show`` and backend reprs (issue 12.2)."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from grapheme_core import Activation, DagNN, get_backend
from grapheme_core.graphview import MAX_LEVEL_ROWS, graph_stats
from grapheme_train.cli import cli

nx = pytest.importorskip("networkx")


def _random_dag(seed: int = 3, n_in: int = 3, n_hidden: int = 7, n_out: int = 2) -> DagNN:
    """A random DAG with a removed node (ids with a gap) and a multi-edge."""
    rng = np.random.default_rng(seed)
    dag = DagNN(backend="numpy", seed=seed)
    ins = dag.add_nodes(n_in, "input")
    hid = [dag.add_hidden(rng.choice(["relu", "tanh", "sigmoid"])) for _ in range(n_hidden)]
    outs = dag.add_nodes(n_out, "output")
    order = [*ins.tolist(), *hid, *outs.tolist()]
    src, dst = [], []
    for j in range(n_in, len(order)):
        for i in rng.choice(j, size=min(j, 3), replace=False):
            src.append(order[i])
            dst.append(order[j])
    dag.add_edges(src, dst)
    dag.add_edge(src[0], dst[0])  # a multi-edge
    dag.remove_node(hid[2])
    return dag


def test_graph_stats_agree_with_networkx():
    dag = _random_dag()
    stats = graph_stats(dag)
    g = dag.to_networkx()
    assert stats["nodes"] == g.number_of_nodes() == dag.node_count
    assert stats["edges"] == g.number_of_edges() == dag.edge_count
    assert stats["depth"] == nx.dag_longest_path_length(nx.DiGraph(g), weight="_unit")
    n = dag.node_count
    assert stats["density"] == pytest.approx(dag.edge_count / (n * (n - 1) / 2))
    assert stats["nodes_per_kind"] == {"input": 3, "hidden": 6, "output": 2}
    assert sum(sum(row[k] for k in ("input", "hidden", "output")) for row in stats["levels"]) == n
    assert stats["levels"][0]["input"] == 3  # inputs without incoming edges sit at level 0
    assert stats["parameters"] == dag.num_parameters


def test_to_networkx_carries_kinds_activations_and_parameters():
    dag = _random_dag()
    g = dag.to_networkx()
    params = dag.get_parameters()
    eids, src, dst = dag.edges()
    for eid, a, b, w in zip(eids, src, dst, params["weight"], strict=True):
        assert g.edges[int(a), int(b), int(eid)]["weight"] == pytest.approx(w)
    for nid, bias in zip(dag.nodes(), params["bias"], strict=True):
        data = g.nodes[int(nid)]
        assert data["kind"] == dag.node_kind(nid).name.lower()
        assert data["activation"] == dag.activation(nid).name.lower()
        assert data["bias"] == pytest.approx(bias)
    assert all(g.nodes[u]["level"] < g.nodes[v]["level"] for u, v in g.edges())


def test_to_networkx_without_networkx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "networkx", None)
    with pytest.raises(ImportError, match=r"grapheme-dagnn\[graph\]"):
        _random_dag().to_networkx()


def test_to_dot_lists_every_node_and_edge_and_ranks_inputs_and_outputs():
    dag = _random_dag()
    text = dag.to_dot()
    assert text.startswith("digraph dagnn {") and text.rstrip().endswith("}")
    _, src, dst = dag.edges()
    edges = re.findall(r"^  n(\d+) -> n(\d+);$", text, flags=re.M)
    assert sorted(edges) == sorted((str(a), str(b)) for a, b in zip(src, dst, strict=True))
    labels = dict(re.findall(r'^  n(\d+) \[label="([^"]+)"', text, flags=re.M))
    assert set(labels) == {str(i) for i in dag.nodes()}
    for nid in dag.hidden_nodes:
        assert labels[str(nid)] == f"h{nid}\\n{dag.activation(nid).name.lower()}"
    source = re.search(r"\{ rank=source; ([^}]*)\}", text).group(1)
    sink = re.search(r"\{ rank=sink; ([^}]*)\}", text).group(1)
    assert source.split() == [f"n{i};" for i in dag.input_nodes]
    assert sink.split() == [f"n{i};" for i in dag.output_nodes]
    weighted = dag.to_dot(weights=True)
    w = dag.get_parameters()["weight"]
    assert f'[label="{w[0]:.3g}"]' in weighted


def test_summary_table_counts_levels_and_folds_deep_graphs():
    dag = DagNN(backend="numpy")
    x = dag.add_input()
    chain = [dag.add_hidden(Activation.TANH) for _ in range(MAX_LEVEL_ROWS + 5)]
    y = dag.add_output()
    dag.add_edges([x, *chain], [*chain, y])
    text = dag.summary()
    assert "DagNN on numpy (float32)" in text
    depth = len(chain) + 1
    assert f"depth:       {depth} (longest path, in edges; {depth + 1} levels)" in text
    n = len(chain)
    assert re.search(rf"^total\s+1\s+{n}\s+1\s+{n + 2}$", text, re.M)
    folded = re.search(r"^(\d+)-(\d+)\s+0\s+(\d+)\s+0\s+(\d+)$", text, re.M)
    assert folded, text
    lo, hi, hidden = int(folded.group(1)), int(folded.group(2)), int(folded.group(3))
    assert hidden == hi - lo + 1  # one hidden node per folded level
    rows = [ln for ln in text.splitlines() if re.match(r"^\d", ln)]
    assert len(rows) == MAX_LEVEL_ROWS
    assert f"activations: linear 1, tanh {n}" in text


def test_summary_of_an_empty_model():
    text = DagNN(backend="numpy").summary()
    assert "edges:       0" in text and "depth:       0" in text


def test_backend_reprs_name_the_backend_device_and_dtypes():
    text = repr(get_backend("numpy"))
    assert text == "NumpyBackend(name='numpy', device='cpu', dtypes=('float32', 'float64'))"


def test_torch_backend_repr_shows_its_options():
    pytest.importorskip("torch")
    torch_backend = get_backend("torch")
    assert "device='cpu'" in repr(torch_backend) and "kernels='csr'" in repr(torch_backend)


# -- grapheme-train show ------------------------------------------------------------------


def test_show_a_dagnn_checkpoint(tmp_path):
    dag = _random_dag()
    path = dag.save(tmp_path / "m.ckpt")
    result = CliRunner().invoke(cli, ["show", str(path)])
    assert result.exit_code == 0, result.output
    assert "DagNN checkpoint" in result.output
    assert dag.summary() in result.output

    result = CliRunner().invoke(cli, ["show", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["format"] == 1 and payload["kind"] == "dagnn"
    assert payload["graph"] == json.loads(json.dumps(graph_stats(dag)))

    dot = tmp_path / "m.dot"
    result = CliRunner().invoke(cli, ["show", str(path), "--dot", str(dot)])
    assert result.exit_code == 0, result.output
    assert dot.read_text() == dag.to_dot()
    result = CliRunner().invoke(cli, ["show", str(path), "--dot", "-"])
    assert result.output == dag.to_dot()


def test_show_a_training_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--epochs", "1", "--hidden", "2", "--heldout", "0", "--train-limit", "20", "-q"]
    args.append("--no-progress")
    result = CliRunner().invoke(cli, [*args, "--checkpoint", "run.ckpt"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["show", "run.ckpt", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["kind"] == "grapheme-train"
    assert payload["training"]["epoch"] == 1
    assert payload["training"]["run"]["hidden"] == 2
    from grapheme_train.checkpoint import load_training
    from grapheme_train.model import SharedAGIModel

    meta, arrays = load_training("run.ckpt")
    dag = SharedAGIModel.from_state(meta["model"], arrays).dag
    assert payload["graph"]["nodes_per_kind"]["hidden"] == len(dag.hidden_nodes)
    assert payload["graph"]["edges"] == dag.edge_count
    text = CliRunner().invoke(cli, ["show", "run.ckpt"]).output
    assert "training checkpoint" in text and "epoch 1" in text


@pytest.mark.parametrize("content", [None, b"not a zip"])
def test_show_refuses_a_missing_or_broken_file(tmp_path, content):
    path = tmp_path / "x.ckpt"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(cli, ["show", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output


def test_readme_shows_the_real_summary_of_its_first_model():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    first = readme[readme.index("## A first model") :]
    code = first[first.index("```python") + len("```python") : first.index("```\n", 20)]
    scope: dict = {}
    exec(code.split("out = dag.forward")[0], scope)  # build the model as the README does
    assert f"```\n{scope['dag'].summary()}\n```" in readme
    assert "grapheme-train show run.ckpt" in readme and "DagNN on numpy (float32)" in readme
