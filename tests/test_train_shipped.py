"""The networks shipped in ``networks/``: what their model cards claim, re-measured on held-out data.

These tests need no torch: the shipped ONNX files are evaluated by reluverify's own
importer (and spot-checked with onnxruntime) on the tasks' fixed held-out splits.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from reluverify.cli import build_parser, main
from reluverify.onnx_import import load_onnx
from reluverify.onnx_runtime import ReferenceModel

NETWORKS = Path(__file__).resolve().parents[1] / "networks"
SHIPPED = {
    # name: (task, least held-out agreement)
    "digits_mlp": ("mlp", 0.95),
    "digits_mlp_small": ("mlp", 0.95),
    "acas_like": ("acas-like", 0.95),
    "digits_sru": ("sru", 0.90),
}


def _card(name: str) -> dict:
    return json.loads((NETWORKS / f"{name}.json").read_text())


def _held_out(task: str):
    if task == "acas-like":
        from reluverify.train.acas_like import acas_like_split

        split = acas_like_split(1)
        return split.test_inputs, split.test_labels, np.argmin
    pytest.importorskip("sklearn")
    from reluverify.train.data import digits_split

    split = digits_split()
    return split.test_inputs, split.test_labels, np.argmax


def test_every_shipped_network_has_a_card_and_the_folder_stays_small():
    onnx_files = sorted(p.stem for p in NETWORKS.glob("*.onnx"))
    assert onnx_files == sorted(SHIPPED)
    for name in onnx_files:
        assert (NETWORKS / f"{name}.json").is_file()
    total = sum(p.stat().st_size for p in NETWORKS.iterdir())
    assert total < 400 * 1024


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_card_matches_its_file_and_its_command_parses(name):
    task, _ = SHIPPED[name]
    card = _card(name)
    path = NETWORKS / f"{name}.onnx"
    assert card["onnx"] == path.name and card["task"] == task
    assert card["onnx_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    words = shlex.split(card["command"])
    assert words[:3] == ["reluverify", "train", task]
    args = build_parser().parse_args(words[1:])
    assert args.out == f"networks/{name}.onnx"
    assert args.seed == card["seed"] and args.optimizer == card["optimizer"]["name"]
    assert args.epochs == card["training"]["epochs"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_held_out_agreement_of_the_shipped_network(name):
    task, least = SHIPPED[name]
    inputs, labels, decide = _held_out(task)
    network = load_onnx(NETWORKS / f"{name}.onnx")
    predicted = decide(network.evaluate(inputs.astype(np.float64)), axis=1)
    agreement = float(np.mean(predicted == labels))
    assert agreement >= least
    card = _card(name)
    # reluverify's float64 evaluation decides like torch's float32 did, up to a near-tie or two
    assert abs(agreement - card["metrics"]["test_accuracy"]) <= 2 / len(labels)
    assert card["metrics"]["test_size"] == len(labels)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_onnxruntime_agrees_with_the_importer(name):
    task, _ = SHIPPED[name]
    inputs, _, _ = _held_out(task)
    sample = inputs[:: max(1, len(inputs) // 25)].astype(np.float64)
    ours = load_onnx(NETWORKS / f"{name}.onnx").evaluate(sample)
    reference = ReferenceModel(str(NETWORKS / f"{name}.onnx"))(sample)
    assert np.max(np.abs(ours - reference) / np.maximum(1.0, np.abs(reference))) < 1e-5


def test_shapes_the_verifier_relies_on():
    mlp = load_onnx(NETWORKS / "digits_mlp.onnx")
    assert mlp.relu_chain().layer_sizes == (32, 32) and mlp.input_shape == (1, 64)
    assert load_onnx(NETWORKS / "digits_mlp_small.onnx").relu_chain().layer_sizes == (16,)
    acas = load_onnx(NETWORKS / "acas_like.onnx")
    assert acas.relu_chain().layer_sizes == (50,) * 6 and acas.input_shape == (1, 5) and acas.output_size == 5
    sru = load_onnx(NETWORKS / "digits_sru.onnx")
    assert sru.input_shape == (1, 8, 8) and sru.output_size == 10
    assert set(sru.activation_counts) == {"sigmoid", "product"}


def test_info_describes_a_shipped_network(capsys):
    assert main(["info", str(NETWORKS / "acas_like.onnx")]) == 0
    assert "5 -> 50 -> 50 -> 50 -> 50 -> 50 -> 50 -> 5" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_card_names_held_out_points_with_their_true_labels(name):
    from reluverify.sweep.evaluation import from_card

    task, _ = SHIPPED[name]
    network = load_onnx(NETWORKS / f"{name}.onnx")
    found = from_card(NETWORKS / f"{name}.onnx", network.input_size)
    assert found is not None and found.card == str(NETWORKS / f"{name}.json")
    inputs, labels, decide = _held_out(task)
    k = len(found.points)
    assert k == 10
    # the first held-out inputs of the task, in the network's input scale, with the split's labels
    assert np.array_equal(found.points, inputs[:k].astype(np.float64))
    assert found.labels.tolist() == labels[:k].tolist()
    assert found.decision == ("min" if decide is np.argmin else "max")
    assert found.domain is not None and all(found.domain.contains(p) for p in found.points)
    # the README's labels: held-out digit 0 is a 2
    if task != "acas-like":
        assert found.labels[0] == 2
