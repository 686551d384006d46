"""Model cards: ``NAME.json`` beside ``NAME.onnx``, saying what the network is and how to rebuild it.

A card holds the architecture, the data (and its held-out split), the optimizer and
its hyper-parameters, the softmax regularisation, the seed, the metrics measured
on held-out data, the export check, the software versions, the ONNX file's SHA-256,
and ``command``: the complete ``reluverify train`` command line, every option
spelled out and the device the run used (``--device cpu`` or ``cuda``, never
``auto``), that rebuilds the network (bit for bit on the same kind of device and
software; float rounding differs between CPU and CUDA). ``training`` records the
device, its name and the training time; ``metrics`` the held-out score.
"""

from __future__ import annotations

import json
import os
import platform

from reluverify.version import __version__
from reluverify.network import file_sha256

CARD_VERSION = 1


def card_path(onnx_path: str | os.PathLike) -> str:
    """``networks/NAME.onnx -> networks/NAME.json``."""
    root, _ = os.path.splitext(os.fspath(onnx_path))
    return root + ".json"


def build_card(options, result, onnx_path: str, check, command: str) -> dict:
    """The card of a network trained with ``options`` (a TrainOptions) into ``result`` (a TrainResult)."""
    import numpy
    import torch

    task = result.task
    return {
        "card_version": CARD_VERSION,
        "name": os.path.splitext(os.path.basename(onnx_path))[0],
        "onnx": os.path.basename(onnx_path),
        "onnx_sha256": file_sha256(onnx_path),
        "task": task.name,
        "summary": task.summary,
        "architecture": result.model.describe(),
        "data": result.data,
        "optimizer": options.optimizer.describe(),
        "softmax": options.softmax.describe(),
        "training": {
            "epochs": options.epochs,
            "batch_size": options.batch_size,
            "schedule": "cosine over epochs",
            "device": result.device,
            "device_name": result.device_name,
            "seconds": round(result.seconds, 1),
        },
        "seed": options.seed,
        "metric": task.metric,
        "metrics": result.metrics,
        "export_check": check.describe(),
        "software": {
            "reluverify": __version__,
            "torch": torch.__version__,
            **({"cuda": torch.version.cuda} if result.device == "cuda" else {}),
            "numpy": numpy.__version__,
            "python": platform.python_version(),
        },
        "command": command,
    }


def write_card(card: dict, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(card, handle, indent=2)
        handle.write("\n")


def read_card(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
