"""Every property in one table, which the command line, the sweep worker and the API read.

An entry (:class:`PropertyKind`) names a property as results and sweep rows name it (``kind``), its
definition in Katz et al. (2017), its class (a :class:`~reluverify.properties.base.Property`), the
parameters its constructor takes after the network, and where it is stated (``scope``: ``"point"``
for a ball at a point, ``"domain"`` for a box of inputs). The front ends build properties from it:

* ``reluverify verify`` takes the property of its scope (``--global``: over a domain) that the given
  options select (:func:`select`: ``--epsilon`` selects one that takes an epsilon), and builds it
  from the options;
* the sweep worker builds a job's property by the job's kind (:func:`reluverify.sweep.worker.job_property`);
* :meth:`reluverify.api.Verifier.check` builds any property by its kind.

Adding a property is a module with a :class:`~reluverify.properties.base.Property` subclass and one
entry in :data:`PROPERTIES`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from reluverify.errors import SpecError
from reluverify.properties.base import Property
from reluverify.properties.eps_local import EpsLocalRobustness
from reluverify.properties.global_robustness import GlobalRobustness
from reluverify.properties.local import LocalRobustness

SCOPES = ("point", "domain")


@dataclass(frozen=True)
class PropertyKind:
    """One registered property (see the module docstring)."""

    cls: type[Property]
    definition: str
    """Its definition in Katz et al. (2017): ``Def. 1``."""
    title: str
    """Its name in words: ``delta-local robustness``."""
    parameters: tuple[str, ...]
    """The constructor's parameters after the network that the front ends fill."""
    scope: str
    check_parameters: tuple[str, ...] = ()
    """Further keywords of the property's ``check`` (e.g. ``subdomain_timeout``)."""

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}")

    @property
    def name(self) -> str:
        """The property's kind: ``local-robustness``."""
        return self.cls.kind

    @property
    def short(self) -> str:
        """The definition without spaces, for tables: ``Def.1``."""
        return self.definition.replace(" ", "")

    @property
    def required(self) -> tuple[str, ...]:
        """The parameters without a default: a property is selected only when all of them are given."""
        signature = inspect.signature(self.cls)
        return tuple(p for p in self.parameters if signature.parameters[p].default is inspect.Parameter.empty)

    def build(self, network, /, **values) -> Property:
        """The property on ``network`` from ``values``; names it does not take and None values are left
        out (its defaults apply)."""
        return self.cls(network, **{p: values[p] for p in self.parameters if values.get(p) is not None})


PROPERTIES: dict[str, PropertyKind] = {
    entry.name: entry
    for entry in (
        PropertyKind(LocalRobustness, "Def. 1", "delta-local robustness",
                     ("point", "delta", "norm", "domain", "decision"), "point"),
        PropertyKind(EpsLocalRobustness, "Def. 3", "(delta, eps)-local robustness",
                     ("point", "delta", "epsilon", "norm", "domain"), "point"),
        PropertyKind(GlobalRobustness, "Def. 2", "(delta, eps)-global robustness",
                     ("domain", "delta", "epsilon", "norm", "partitions"), "domain", ("subdomain_timeout",)),
    )
}
"""Every property by its kind."""


def property_kind(name: str) -> PropertyKind:
    """The registered property called ``name``; an unknown name is a one-line error that lists them."""
    try:
        return PROPERTIES[name]
    except KeyError:
        raise SpecError(f"unknown property {name!r}: use {', '.join(PROPERTIES)}") from None


def select(scope: str, /, **values) -> PropertyKind:
    """The property of ``scope`` that the given ``values`` state: of those whose required parameters
    are all given (not None), the one that requires the most (``epsilon`` given selects Def. 3 over
    Def. 1)."""
    given = {name for name, value in values.items() if value is not None}
    matches = [k for k in PROPERTIES.values() if k.scope == scope and set(k.required) <= given]
    if not matches:
        where = "at a point" if scope == "point" else "over a domain"
        raise SpecError(f"no property {where} is stated by {', '.join(sorted(given)) or 'nothing'}")
    return max(matches, key=lambda k: len(k.required))
