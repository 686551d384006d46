"""The property registry: every registered property builds its queries and is reachable from the command
line, the sweep worker and the API; the runner's worker processes come from the options alone."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from reluverify.cli import main
from reluverify.errors import SpecError
from reluverify.properties.base import Property
from reluverify.properties.registry import PROPERTIES, property_kind, select
from test_properties_oracles import difference_net

# A value for every parameter a registered property takes (on difference_net: 2 inputs, 2 outputs).
VALUES = {"point": [0.5, 0.3], "delta": 0.05, "epsilon": 0.5, "norm": "inf", "decision": "max", "partitions": 2,
          "domain": {"lower": [0.0, 0.0], "upper": [1.0, 1.0]}}
# How the command line states each parameter (a property over a domain also takes --global).
FLAGS = {"point": "--point", "domain": "--domain", "delta": "--delta", "epsilon": "--epsilon", "norm": "--norm",
         "decision": "--decision", "partitions": "--partitions"}
KINDS = sorted(PROPERTIES)


def test_every_entry_matches_its_class():
    for name, entry in PROPERTIES.items():
        assert issubclass(entry.cls, Property) and entry.cls.kind == name == entry.name
        constructor = inspect.signature(entry.cls).parameters
        assert list(constructor)[0] == "network" and set(entry.parameters) <= set(constructor)
        assert set(entry.check_parameters) <= set(inspect.signature(entry.cls.check).parameters)
        assert set(entry.required) <= set(VALUES) and set(entry.parameters) <= set(FLAGS)
        assert entry.definition.startswith("Def. ") and entry.short == entry.definition.replace(" ", "")


@pytest.mark.parametrize("kind", KINDS)
def test_each_property_builds_its_queries(kind, tmp_path):
    entry = PROPERTIES[kind]
    prop = entry.build(difference_net(tmp_path).network, **VALUES)
    assert type(prop) is entry.cls
    queries = prop.queries()
    assert queries and all(q.disjuncts for q in queries)
    assert prop.describe() and json.dumps(prop.parameters())


def test_select_takes_the_property_the_values_state():
    assert select("point", point=1, delta=0.1, epsilon=None).name == "local-robustness"
    assert select("point", point=1, delta=0.1, epsilon=0.2).name == "eps-local-robustness"
    assert select("domain", domain=1, delta=0.1, epsilon=0.2).name == "global-robustness"
    with pytest.raises(SpecError, match="no property over a domain"):
        select("domain", domain=1, delta=0.1)
    with pytest.raises(SpecError, match="unknown property 'top-k'"):
        property_kind("top-k")


def _files(tmp_path) -> dict:
    files = {}
    for name in ("point", "domain"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(VALUES[name]))
        files[name] = str(path)
    return files


@pytest.mark.parametrize("kind", KINDS)
def test_each_property_is_reachable_from_the_command_line(kind, tmp_path, capsys):
    entry = PROPERTIES[kind]
    net = difference_net(tmp_path)
    files = _files(tmp_path)
    args = ["verify", net.path, "--json", "--quiet", "--timeout", "30"] + (["--global"] if entry.scope == "domain" else [])
    for name in entry.required:
        args += [FLAGS[name], files.get(name, str(VALUES[name]))]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == kind and result["verdict"] in ("robust", "not robust")


@pytest.mark.parametrize("kind", KINDS)
def test_each_property_is_reachable_from_the_sweep_worker(kind, tmp_path):
    from reluverify.sweep.worker import job_property, run_job

    net = difference_net(tmp_path)
    job = {"key": "k", "kind": kind, "network": net.path, "network_sha256": net.network.source_sha256,
           **VALUES, "domain": [VALUES["domain"]["lower"], VALUES["domain"]["upper"]]}
    assert type(job_property(net.network, job)) is PROPERTIES[kind].cls
    answer = run_job(job, {"timeout": 30})
    assert answer["verdict"] in ("robust", "not robust")


@pytest.mark.parametrize("kind", KINDS)
def test_each_property_is_reachable_from_the_api(kind, tmp_path):
    from reluverify import Verifier

    entry = PROPERTIES[kind]
    verifier = Verifier(difference_net(tmp_path).path, timeout=30)
    result = verifier.check(kind, **{name: VALUES[name] for name in entry.parameters})
    assert result.kind == kind and result.verdict in ("robust", "not robust")
    with pytest.raises(TypeError, match="takes no parameter 'radius'"):
        verifier.check(kind, radius=1.0, **{name: VALUES[name] for name in entry.required})


def test_the_api_methods_and_check_agree(tmp_path):
    from reluverify import Verifier

    verifier = Verifier(difference_net(tmp_path).path, timeout=30)
    by_method = verifier.local_robustness([0.5, 0.3], 0.15)
    by_kind = verifier.check("local-robustness", point=[0.5, 0.3], delta=0.15)
    assert by_method.verdict == by_kind.verdict == "not robust" and by_method.label == by_kind.label == 0


# ------------------------------------------------------------------ worker processes from the options
def _spy_solve(query, options, *rest):
    """A solver that reports the worker processes its options allow (in its reason)."""
    from reluverify.solver.result import UNKNOWN, Result

    return Result(UNKNOWN, reason=f"jobs {options.parallel.jobs}")


def _queries(count: int):
    from reluverify.network import ReluChain
    from reluverify.query import box_query

    network = ReluChain((np.eye(2),), (np.zeros(2),)).to_network()
    row = np.array([1.0, 0.0])
    return [box_query(network, [0.0, 0.0], [1.0, 1.0], [[(row, -1.0)], [(-row, -2.0)]]) for _ in range(count)]


def test_the_runner_takes_its_worker_processes_from_the_options(monkeypatch):
    from reluverify.properties import runner
    from reluverify.solver.options import SolverOptions

    monkeypatch.setattr(runner, "_solve", _spy_solve)
    options = SolverOptions(timeout=30).with_jobs(2)
    # one query, not split: its search is shared among the two processes
    single = runner.run_queries(_queries(1), options)
    assert single.reason == "jobs 2" and single.tasks == 1
    # several queries, or a query's disjuncts split: one task per process, each with one process
    several = runner.run_queries(_queries(2), options, prioritize=False, facts=[])
    assert several.reason == "jobs 1" and several.tasks == 2
    split = runner.run_queries(_queries(1), options, split_disjuncts=True)
    assert split.reason == "jobs 1" and split.tasks == 2
    # one process: everything here, one process each
    alone = runner.run_queries(_queries(2), options.with_jobs(1), prioritize=False, facts=[])
    assert alone.reason == "jobs 1" and alone.tasks == 2
