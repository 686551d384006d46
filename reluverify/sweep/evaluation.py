"""Evaluation points: the points, true labels, domain and decision rule a robust-accuracy check runs on.

They come from one of two places:

* ``--points FILE`` -- read by :func:`reluverify.properties.inputs.read_point_set` (the one reader of
  points), with the labels and the domain the file carries; no decision rule;
* the network's **model card** ``NAME.json`` beside ``NAME.onnx`` when it names them under
  ``"evaluation_points"``::

      "evaluation_points": {
        "file": "digits_points10.json",        # relative to the card; read by the same reader
        "description": "the first ten held-out digits, with their true labels",
        "domain": {"lower": 0.0, "upper": 1.0}, # optional: every ball is cut to this box
        "decision": "max"                       # optional: the label is the top (max) or lowest (min) score
      }

  A domain the points file carries comes before the card's.

A ``NAME.json`` that is not a card naming evaluation points (a point file, say) gives None:
the caller then asks for ``--point`` or ``--points``. A card that names them badly (no file, a
missing file, a domain of the wrong size, an unknown decision rule) is a one-line
:class:`~reluverify.errors.SpecError` naming the card.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from reluverify.errors import SpecError
from reluverify.properties.inputs import Domain, read_json, read_point_set

CARD_KEY = "evaluation_points"
DECISIONS = ("max", "min")


@dataclass(frozen=True, eq=False)
class EvaluationPoints:
    """``points`` is ``(k, n)`` float64; ``labels`` is ``(k,)`` int64 or None (unknown)."""

    file: str
    points: np.ndarray
    labels: np.ndarray | None
    domain: Domain | None = None
    decision: str | None = None
    card: str | None = None
    """The model card that named them (None for ``--points FILE``)."""
    description: str = ""
    domain_source: str = ""
    """Where the domain comes from, in words ("the domain in FILE", "the model card's domain")."""

    @property
    def source(self) -> str:
        """Where the points come from, in words."""
        return f"{self.file} (named by the model card {self.card})" if self.card else self.file


def card_path(network_path: str | os.PathLike) -> str:
    """``networks/NAME.onnx -> networks/NAME.json``."""
    return os.path.splitext(os.fspath(network_path))[0] + ".json"


def from_file(path: str | os.PathLike, size: int, outputs: int | None = None) -> EvaluationPoints:
    """The points of a points file, with the labels (checked against ``outputs``) and domain it carries."""
    found = read_point_set(path, size, outputs)
    where = "" if found.domain is None else f"the domain in {found.file}"
    return EvaluationPoints(found.file, found.points, found.labels, found.domain, domain_source=where)


def from_card(network_path: str | os.PathLike, size: int, outputs: int | None = None) -> EvaluationPoints | None:
    """The evaluation points named by the model card beside ``network_path``; None without such a card."""
    card = card_path(network_path)
    if not os.path.isfile(card):
        return None
    data = read_json(card)
    if not isinstance(data, dict) or CARD_KEY not in data:
        return None
    entry = data[CARD_KEY]
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise SpecError(f"{card}: '{CARD_KEY}' must be an object with a 'file' naming the points file")
    file = os.path.join(os.path.dirname(card), entry["file"])
    if not os.path.isfile(file):
        raise SpecError(f"{card}: '{CARD_KEY}' names {entry['file']}, which is not beside the card")
    decision = entry.get("decision")
    if decision is not None and decision not in DECISIONS:
        raise SpecError(f"{card}: '{CARD_KEY}': unknown decision rule {decision!r}: use 'max' or 'min'")
    domain = None
    if entry.get("domain") is not None:
        domain = Domain.of(entry["domain"], size, f"{card}: '{CARD_KEY}' domain")
    base = from_file(file, size, outputs)
    if base.domain is not None:
        domain, where = base.domain, base.domain_source
    else:
        where = "" if domain is None else "the model card's domain"
    return EvaluationPoints(base.file, base.points, base.labels, domain, decision, card,
                            str(entry.get("description", "")), where)
