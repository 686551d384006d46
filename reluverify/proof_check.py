"""The independent checker of ``unsat`` certificates (format 1, ``docs/certificates.md``).

``check_files(NETWORK.onnx, SPEC.vnnlib, PROOF.npz)`` answers ``valid`` or names the first thing that
fails: a header field, the structure of a proof tree, or the first leaf (in node order) whose evidence
does not refute it, with the leaf's path and the numbers.

**What it trusts.** The ONNX importer (``reluverify.onnx_import.load_onnx``; its ReLU-chain view,
made dense with ``reluverify.linear_ops.dense``), the VNN-LIB reader (``reluverify.vnnlib.load_query``),
numpy's float64 arithmetic (IEEE 754, round to nearest) -- and nothing the solver computed: it never
imports ``reluverify.solver``. Every bound, every relaxation and every evidence sum is recomputed here
(:meth:`_Checker.relax` is its own copy of ``reluverify.solver.bounds.relaxation``, on purpose).

**Its arithmetic.** Float64, with an a-priori bound on every rounding error (Higham, Accuracy and
Stability of Numerical Algorithms, 3.1): a sum of at most ``n`` products computed in any order is
within ``gamma_n * (the same sum of absolute values)`` of its exact value, ``gamma_n = n u / (1 - n u)``,
``u = 2^-53``. Every quantity is such a sum: a matrix product, a dot product, an elementwise
relaxation step, a box minimum. The checker uses one ``gamma = gamma_N`` with ``N`` larger than any of
these sums (twice the widest layer plus the rows of a disjunct and the input rows, plus 16) and adds,
for each step, ``gamma * |coefficients| . (bound on |variable|)`` to an error bound (``|z| <=
|W| |x| + |b|`` for a layer's output, ``max(|l|, |u|)`` for a bounded neuron, the box for ``v``).
Error bounds are computed in float64 and multiplied by ``SAFETY = 1.01``, far above their own rounding
(``N u < 1e-10``). A lower bound is ``nextafter(value - error, -inf)``, an upper bound ``nextafter(value +
error, +inf)``; a chord slope ``u / (u - l)`` is rounded up (still a valid upper relaxation on ``[l, u]``);
a leaf is refuted only when ``fl(value - error) > 0``, so ``value - error > 0``: every bound used contains
the exact real value. NaN or infinite results never refute anything."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import asdict, dataclass, field

import numpy as np

from reluverify.errors import ReluverifyError
from reluverify.linear_ops import dense
from reluverify.onnx_import import load_onnx
from reluverify.vnnlib import load_query

FORMAT, VERSION = "reluverify-certificate", 1
U = 2.0**-53
SAFETY = 1.01
SLOPE_UP = 1.0 + 2.0**-50  # s * SLOPE_UP >= the exact u / (u - l), whatever the rounding of s
LEAVES_PER_CHUNK = 1024
ROWS_PER_BLOCK = 8192
INPUT_LOWER, INPUT_UPPER, ACTIVE, INACTIVE = 1, 2, 3, 4


class ProofFileError(ReluverifyError):
    """The certificate file cannot be read as a NumPy .npz archive."""


class Invalid(Exception):
    """The certificate is rejected; ``str()`` says why, ``details`` where."""

    def __init__(self, message: str, **details) -> None:
        super().__init__(message)
        self.details = details


@dataclass
class CheckResult:
    valid: bool
    reason: str = ""
    disjunct: int | None = None
    node: int | None = None
    path: list = field(default_factory=list)
    bound: float | None = None
    rounding_error: float | None = None
    trees: int = 0
    nodes: int = 0
    leaves: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------- entry points
def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_archive(path) -> dict:
    """The certificate's arrays by name (objects/pickles are refused); ProofFileError for a bad file."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                raise ProofFileError(f"{path}: not a certificate (.npz archive)")
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ProofFileError(f"{path}: a single array, not an .npz archive")
            out = {}
            for name in archive.files:
                try:
                    out[name] = archive[name]
                except ValueError:
                    raise ProofFileError(f"{path}: entry {name!r} holds Python objects (not allowed)") from None
            return out
    except FileNotFoundError:
        raise ProofFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ProofFileError(f"{path}: is a directory, not a certificate") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ProofFileError(f"{path}: not a readable .npz archive ({exc})") from None


def check_files(network_path, spec_path, proof_path) -> CheckResult:
    """Check ``proof_path`` for the query ``load_query(load_onnx(network_path), spec_path)``."""
    network = load_onnx(network_path)
    query = load_query(network, spec_path)
    archive = read_archive(proof_path)
    return check(query, archive, sha256(network_path), sha256(spec_path))


def check(query, archive: dict, network_sha256: str, spec_sha256: str) -> CheckResult:
    """Check a certificate (its arrays) against a query read by ``load_query`` and the files' hashes."""
    start = time.perf_counter()
    counts = {"trees": 0, "nodes": 0, "leaves": 0}
    try:
        header = _header(archive, query, network_sha256, spec_sha256)
        checker = _Checker(query)
        trees = [_Tree(archive, spec, query, checker) for spec in header["trees"]]
        for tree in sorted(trees, key=lambda t: t.disjunct):
            checker.check_tree(tree)
            counts["trees"] += 1
            counts["nodes"] += tree.parent.size
            counts["leaves"] += tree.leaf_node.size
    except Invalid as exc:
        return CheckResult(False, str(exc), seconds=time.perf_counter() - start, **exc.details, **counts)
    return CheckResult(True, seconds=time.perf_counter() - start, **counts)


# ---------------------------------------------------------------------- header
def _header(archive: dict, query, network_sha256: str, spec_sha256: str) -> dict:
    if "header" not in archive:
        raise Invalid("the certificate has no 'header' entry")
    raw = archive["header"]
    try:
        text = raw.tobytes().decode("utf-8") if raw.dtype == np.uint8 else str(raw.reshape(-1)[0])
        header = json.loads(text)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise Invalid("the header is not UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise Invalid("the header is not a JSON object")
    expect = {"format": FORMAT, "version": VERSION, "network_sha256": network_sha256, "spec_sha256": spec_sha256,
              "num_inputs": query.num_inputs, "num_network_inputs": query.num_network_inputs,
              "num_outputs": query.num_outputs, "disjuncts": len(query.disjuncts)}
    what = {"network_sha256": "the ONNX file's SHA-256", "spec_sha256": "the VNN-LIB file's SHA-256"}
    for key, value in expect.items():
        got = header.get(key)
        if key.endswith("sha256") and isinstance(got, str):
            got = got.lower()
        if got != value or type(got) is not type(value):
            raise Invalid(f"header: {key} is {got!r}, expected {value!r}" + (f" ({what[key]})" if key in what else ""))
    trees = header.get("trees")
    if not isinstance(trees, list) or not all(isinstance(t, dict) for t in trees):
        raise Invalid("header: trees is not a list of objects")
    seen = [t.get("disjunct") for t in trees]
    for d in range(len(query.disjuncts)):
        if seen.count(d) != 1:
            raise Invalid(f"header: disjunct {d} has {seen.count(d)} trees, expected exactly one")
    if len(seen) != len(query.disjuncts):
        raise Invalid(f"header: {len(seen)} trees for {len(query.disjuncts)} disjuncts")
    for t in trees:
        if not isinstance(t.get("prefix"), str) or t.get("bounds_at") not in ("leaf", "root"):
            raise Invalid(f"header: the tree of disjunct {t.get('disjunct')} needs a string prefix and bounds_at "
                          "'leaf' or 'root'")
    return header


# ---------------------------------------------------------------------- trees
class _Tree:
    """One proof tree: its arrays read and checked for shape, type, range and coverage."""

    def __init__(self, archive: dict, spec: dict, query, net: "_Checker") -> None:
        self.disjunct, self.bounds_at, self.prefix = spec["disjunct"], spec["bounds_at"], spec["prefix"]
        self.archive = archive
        self.query = query
        d = query.disjuncts[self.disjunct]
        self.lower, self.upper = d.lower, d.upper
        self.parent = self._get("parent", "i")
        K = self.parent.size
        self.kind, self.index = self._get("kind", "i", (K,)), self._get("index", "i", (K,))
        self.value = self._get("value", "f", (K,))
        self.leaf_node = self._get("leaf_node", "i")
        L = self.leaf_node.size
        self.leaf_kind = self._get("leaf_kind", "i", (L,))
        rows, extra = d.constraints.num_rows, query.input_constraints.num_rows
        no_bounds = not np.any(self.leaf_kind == 0)
        self.weights = self._get("weights", "f", (L, rows), optional=no_bounds)
        self.gamma = self._get("gamma", "f", (L, extra), optional=no_bounds or extra == 0)
        sparse = [self._get(f"sparse_{n}", k, optional=True) for n, k in
                  (("leaf", "i"), ("relu", "i"), ("alpha", "f"), ("beta_lower", "f"), ("beta_upper", "f"))]
        farkas = [self._get(f"farkas_{n}", k, optional=True) for n, k in (("leaf", "i"), ("row", "i"), ("value", "f"))]
        interm = [self._get(f"interm_{n}", k, optional=True) for n, k in
                  (("layer", "i"), ("neuron", "i"), ("sign", "if"))]
        self.interm_alpha = self._get("interm_alpha", "f", (interm[0].size, net.n_relus), optional=not interm[0].size)
        for group, names in ((sparse, "sparse_*"), (farkas, "farkas_*"), (interm, "interm_*")):
            if len({a.size for a in group}) > 1:
                raise Invalid(f"{self.where()}: the arrays {self.prefix}{names} have different lengths")
        self.sparse, self.farkas, self.interm = sparse, farkas, interm
        self._check_coverage(query.num_inputs, net.n_relus)
        self._check_values(net)

    def where(self, node=None) -> str:
        if node is None:
            return f"disjunct {self.disjunct}"
        return f"disjunct {self.disjunct}, leaf node {node} ({', '.join(self.path(node)) or 'the root'})"

    def _get(self, name, kind, shape=None, optional=False) -> np.ndarray:
        full = self.prefix + name
        if full not in self.archive:
            if optional:
                return np.zeros(shape or (0,), dtype=np.float64 if kind == "f" else np.int64)
            raise Invalid(f"{self.where()}: the array {full} is missing")
        a = self.archive[full]
        if a.dtype.kind not in ("iu" if kind == "i" else kind.replace("i", "iu")):
            raise Invalid(f"{self.where()}: the array {full} has type {a.dtype}, expected {'integers' if kind == 'i' else 'numbers'}")
        if (shape is None and a.ndim != 1) or (shape is not None and a.shape != shape):
            raise Invalid(f"{self.where()}: the array {full} has shape {a.shape}, expected {shape or '(K,)'}")
        return a.astype(np.int64) if kind == "i" else a.astype(np.float64)

    def path(self, node: int) -> list[str]:
        steps = []
        while node > 0:
            k, i, v = self.kind[node], int(self.index[node]), self.value[node]
            steps.append(f"v_{i} {'<=' if k == INPUT_LOWER else '>='} {v:.6g}" if k < ACTIVE
                         else f"relu {i} {'active' if k == ACTIVE else 'inactive'}")
            node = self.parent[node]
        return steps[::-1]

    def _check_coverage(self, n_inputs: int, n_relus: int) -> None:
        p, kind, K = self.parent, self.kind, self.parent.size
        if K == 0 or p[0] != -1 or kind[0] != 0:
            raise Invalid(f"{self.where()}: node 0 must be the root (parent -1, kind 0)")
        bad = np.flatnonzero((p[1:] < 0) | (p[1:] >= np.arange(1, K)) | (kind[1:] < 1) | (kind[1:] > 4))
        if bad.size:
            raise Invalid(f"{self.where()}: node {bad[0] + 1} needs an earlier node as parent and a kind 1-4")
        children = np.bincount(p[1:], minlength=K)
        bad = np.flatnonzero((children != 0) & (children != 2))
        if bad.size:
            raise Invalid(f"{self.where()}: node {bad[0]} has {children[bad[0]]} children; an internal node needs "
                          "exactly the two children of one split")
        order = np.argsort(p[1:], kind="stable") + 1
        a, b = order[0::2], order[1::2]
        lo, hi = np.minimum(kind[a], kind[b]), np.maximum(kind[a], kind[b])
        inputs = (lo == INPUT_LOWER) & (hi == INPUT_UPPER)
        ok = (inputs | ((lo == ACTIVE) & (hi == INACTIVE))) & (self.index[a] == self.index[b])
        ok &= ~inputs | ((self.value[a] == self.value[b]) & np.isfinite(self.value[a]))
        ok &= np.where(inputs, self.index[a] < n_inputs, self.index[a] < n_relus) & (self.index[a] >= 0)
        if not ok.all():
            j = np.flatnonzero(~ok)[0]
            raise Invalid(f"{self.where()}: the children {a[j]} and {b[j]} of node {p[a[j]]} are not the two halves of "
                          "one split (kinds 1 and 2 of one input and value, or 3 and 4 of one ReLU, indices in range)")
        leaves = np.flatnonzero(children == 0)
        if self.leaf_node.size != leaves.size or not np.array_equal(np.sort(self.leaf_node), leaves):
            missing = np.setdiff1d(leaves, self.leaf_node)
            raise Invalid(f"{self.where()}: leaf_node must list every leaf exactly once" +
                          (f" (leaf node {missing[0]} has no evidence)" if missing.size else
                           f" ({self.leaf_node.size} entries for {leaves.size} leaves)"))
        if np.any((self.leaf_kind != 0) & (self.leaf_kind != 1)):
            raise Invalid(f"{self.where()}: leaf_kind must be 0 (bound) or 1 (LP)")

    def _check_values(self, net: "_Checker") -> None:
        L, bound = self.leaf_node.size, self.leaf_kind == 0

        def fail(leaf_pos, what):
            raise Invalid(f"{self.where(self.leaf_node[leaf_pos])}: {what}", disjunct=self.disjunct,
                          node=int(self.leaf_node[leaf_pos]), path=self.path(self.leaf_node[leaf_pos]))

        for name, a in (("weights", self.weights), ("gamma", self.gamma)):
            bad = np.flatnonzero(bound & ~np.all(np.isfinite(a) & (a >= 0), axis=1))
            if bad.size:
                fail(bad[0], f"a {name} entry is negative or not finite")
        s_leaf, s_relu, alpha, bl, bu = self.sparse
        f_leaf, f_row, f_value = self.farkas
        for name, leaf in (("sparse_leaf", s_leaf), ("farkas_leaf", f_leaf)):
            if np.any((leaf < 0) | (leaf >= L)):
                raise Invalid(f"{self.where()}: {name} must hold leaf positions 0..{L - 1} (positions in leaf_node)")
        if np.any((s_relu < 0) | (s_relu >= net.n_relus)) or np.any(f_row < 0):
            raise Invalid(f"{self.where()}: sparse_relu must be in 0..{net.n_relus - 1} and farkas_row non-negative")
        for leaf, ok, what in ((s_leaf, (alpha >= 0) & (alpha <= 1), "a slope alpha is outside [0, 1]"),
                               (s_leaf, np.isfinite(bl + bu) & (bl >= 0) & (bu >= 0), "a beta multiplier is negative or not finite"),
                               (f_leaf, np.isfinite(f_value) & (f_value >= 0), "a Farkas multiplier is negative or not finite")):
            bad = np.flatnonzero(~ok)
            if bad.size:
                fail(leaf[bad].min(), what)
        for leaf, key, what in ((s_leaf, s_relu, "a ReLU"), (f_leaf, f_row, "a Farkas row")):
            keys = leaf * (int(key.max(initial=0)) + 1) + key
            uniq, count = np.unique(keys, return_counts=True)
            if np.any(count > 1):
                fail(leaf[np.flatnonzero(keys == uniq[count > 1][0])[0]], f"{what} is listed twice for this leaf")
        layer, neuron, sign = self.interm
        if layer.size and self.bounds_at != "root":
            raise Invalid(f"{self.where()}: interm rows are allowed only with bounds_at 'root'")
        sizes = np.array(net.sizes + [0])
        if np.any((layer < 0) | (layer >= len(net.sizes))) or np.any((neuron < 0) | (neuron >= sizes[np.clip(layer, 0, len(net.sizes))])) \
                or np.any((sign != 1) & (sign != -1)):
            raise Invalid(f"{self.where()}: an interm row has a layer, neuron or sign (+1/-1) out of range")
        below = np.arange(net.n_relus)[None, :] < np.asarray(net.offsets)[layer][:, None]
        if np.any(below & ~((self.interm_alpha >= 0) & (self.interm_alpha <= 1))):
            raise Invalid(f"{self.where()}: an interm_alpha slope of a lower layer is outside [0, 1]")


# ---------------------------------------------------------------------- bounds and evidence
def _down(x):
    return np.nextafter(x, -np.inf)


def _up(x):
    return np.nextafter(x, np.inf)


class _Bounds:
    """Bounds over a batch of regions: boxes ``lo, hi`` (B, n); per hidden layer ``l, u`` (B, n_k);
    per affine layer ``zmag`` (B, n_k), a bound on ``|W x| + |b|`` (so on ``|z|`` and on the
    magnitude of every sum behind ``z``)."""

    def __init__(self, lo, hi) -> None:
        self.lo, self.hi = lo, hi
        self.vmax = np.maximum(np.abs(lo), np.abs(hi))
        self.l, self.u, self.zmag, self.tables = [], [], [], {}  # tables: per layer, see ``_Checker.relax``


class _Relax:
    """Per-row relaxation parameters (R, n_relus): ``bound`` (alpha, NaN = heuristic; beta_lower,
    beta_upper) or ``lp`` (multipliers p of ``z - h``, q of the chord row, t of the split rows, signed)."""

    def __init__(self, mode: str, a=None, b=None, c=None) -> None:
        self.mode, self.a, self.b, self.c = mode, a, b, c


class _Checker:
    """The network as a dense ReLU chain, and the rigorous bound computations of the document."""

    def __init__(self, query) -> None:
        chain = query.relu_chain()
        self.query = query
        self.W = [np.asarray(dense(w), dtype=np.float64) for w in chain.weights]
        self.b = [np.asarray(b, dtype=np.float64) for b in chain.biases]
        if self.W[0].shape[1] != query.num_inputs:
            raise Invalid("the checker handles queries over one network without auxiliary variables")
        self.Wabs = [np.abs(w) for w in self.W]
        self.Wpos = [np.maximum(w, 0.0) for w in self.W]
        self.Wneg = [np.minimum(w, 0.0) for w in self.W]
        self.babs = [np.abs(b) for b in self.b]
        self.sizes = [w.shape[0] for w in self.W[:-1]]
        self.offsets = [0, *np.cumsum(self.sizes).tolist()]
        self.n_relus = self.offsets[-1]
        widest = max(max(w.shape) for w in self.W)
        rows = max(d.constraints.num_rows for d in query.disjuncts) + query.input_constraints.num_rows
        n = 2 * widest + rows + 16
        self.G = n * U / (1.0 - n * U)

    # -- step 1: interval arithmetic, then back-substitution of the unstable neurons
    def bounds(self, lo, hi) -> _Bounds:
        bd = _Bounds(lo, hi)
        xl, xu, xmax = lo, hi, bd.vmax
        for k in range(len(self.W)):
            bd.zmag.append(xmax @ self.Wabs[k].T + self.babs[k])
            if k == len(self.W) - 1:
                return bd
            err = SAFETY * self.G * bd.zmag[k]
            l = _down(xl @ self.Wpos[k].T + xu @ self.Wneg[k].T + self.b[k] - err)
            u = _up(xu @ self.Wpos[k].T + xl @ self.Wneg[k].T + self.b[k] + err)
            l, u = np.where(np.isnan(l), -np.inf, l), np.where(np.isnan(u), np.inf, u)
            leaf, neuron = np.nonzero((l < 0) & (u > 0))
            if k > 0 and leaf.size:
                sign = np.r_[np.ones(leaf.size), -np.ones(leaf.size)]
                found = self.backsub(bd, k, np.r_[leaf, leaf], np.r_[neuron, neuron], sign)
                l[leaf, neuron] = np.fmax(l[leaf, neuron], found[: leaf.size])
                u[leaf, neuron] = np.fmin(u[leaf, neuron], -found[leaf.size:])
            bd.l.append(l)
            bd.u.append(u)
            xl, xu = np.maximum(l, 0.0), np.maximum(u, 0.0)
            xmax = xu
        return bd

    # -- step 2 (bounds_at root): the certificate's interm rows, layer by layer
    def tighten(self, bd: _Bounds, tree: _Tree) -> None:
        layer, neuron, sign = tree.interm
        for k in range(len(self.sizes)):
            sel = np.flatnonzero(layer == k)
            if sel.size:
                found = self.backsub(bd, k, np.zeros(sel.size, dtype=np.int64), neuron[sel], sign[sel],
                                     tree.interm_alpha[sel])
                up = sign[sel] > 0
                np.fmax.at(bd.l[k][0], neuron[sel][up], found[up])
                np.fmin.at(bd.u[k][0], neuron[sel][~up], -found[~up])
                bd.tables.pop(k, None)

    def backsub(self, bd: _Bounds, k: int, leaf, neuron, sign, alpha=None) -> np.ndarray:
        """Rigorous lower bounds of ``sign * z_{k, neuron}`` over the boxes ``leaf`` (rounded down)."""
        out = np.empty(leaf.size)
        for s in range(0, leaf.size, ROWS_PER_BLOCK):
            part = slice(s, s + ROWS_PER_BLOCK)
            rows = leaf[part]
            nu = np.zeros((rows.size, self.W[k].shape[0]))
            nu[np.arange(rows.size), neuron[part]] = sign[part]
            relax = _Relax("bound", None if alpha is None else alpha[part])
            mu, c, mag = self.backward(bd, rows, nu, k, relax)
            value, err = self.finish(bd, rows, mu, c, mag)
            out[part] = _down(value - err)
        return out

    def backward(self, bd: _Bounds, rows, nu, k: int, relax: _Relax):
        """``nu . z_k >= mu . v + c - error`` over the regions: substitution down to the input.
        Returns ``mu``, ``c`` and the magnitude ``mag`` with error ``<= SAFETY * G * mag``."""
        c = np.zeros(rows.size)
        mag = np.zeros(rows.size)
        while True:
            mag += (np.abs(nu) * bd.zmag[k][rows]).sum(1)
            mu = nu @ self.W[k]
            c = c + nu @ self.b[k]
            mag += np.abs(c)
            if k == 0:
                return mu, c, mag
            k -= 1
            nu, dc, dmag = self.relax(bd, rows, k, mu, relax)
            c = c + dc
            mag += dmag + np.abs(c)

    def relax(self, bd: _Bounds, rows, k: int, mu, r: _Relax):
        """``mu . relu(z_k) >= nu . z_k + dc`` (bound evidence), or the LP's rows of layer k combined with
        ``mu . h_k`` and minimised over ``h in [0, u]`` (LP evidence)."""
        if r.mode == "bound" and r.a is None and r.b is None:  # heuristic slopes: per-box tables, gathered
            if k not in bd.tables:
                l, u = bd.l[k], bd.u[k]
                unstable, on = (l < 0) & (u > 0), (l >= 0).astype(np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    s = np.where(unstable, u / (u - l) * SLOPE_UP, on)
                bd.tables[k] = (np.where(unstable, (u > -l).astype(np.float64), on), s,
                                np.where(unstable, -s * l, 0.0), np.maximum(np.abs(l), np.abs(u)))
            alpha, s, sl, zabs = (t[rows] for t in bd.tables[k])
            return mu * np.where(mu < 0, s, alpha), (np.minimum(mu, 0.0) * sl).sum(1), 2.0 * (np.abs(mu) * zabs).sum(1)
        part = slice(self.offsets[k], self.offsets[k + 1])
        l, u = bd.l[k][rows], bd.u[k][rows]
        active = l >= 0
        unstable = ~active & (u > 0)  # the rest (u <= 0) is inactive: h = 0
        s = u / (u - l) * SLOPE_UP
        zabs = np.maximum(np.abs(l), np.abs(u))
        if r.mode == "lp":
            p, q, t = r.a[:, part], r.b[:, part], r.c[:, part]
            dc = np.where(unstable, np.minimum((mu - p + q) * u, 0.0) + q * s * l, 0.0).sum(1)
            nu = np.where(active, mu, 0.0) + np.where(unstable, p - q * s, 0.0) + t
            weight = np.abs(mu) + p + q + np.abs(t)
        else:
            heuristic = (u > -l).astype(np.float64)
            alpha = heuristic if r.a is None else np.where(np.isnan(r.a[:, part]), heuristic, r.a[:, part])
            neg = unstable & (mu < 0)
            nu = np.where(active, mu, np.where(neg, s * mu, np.where(unstable, alpha * mu, 0.0)))
            dc = np.where(neg, -mu * s * l, 0.0).sum(1)
            weight = np.abs(mu)
            if r.b is not None:
                bl, bu = r.b[:, part], r.c[:, part]
                nu = nu + bu - bl
                dc = dc + (np.where(bl > 0, bl * l, 0.0) - np.where(bu > 0, bu * u, 0.0)).sum(1)
                weight = weight + bl + bu
        return nu, dc, 2.0 * (weight * zabs).sum(1)

    def finish(self, bd: _Bounds, rows, mu, c, mag):
        """The minimum of ``mu . v + c`` over the boxes, and its rounding error bound."""
        value = np.where(mu >= 0, mu * bd.lo[rows], mu * bd.hi[rows]).sum(1) + c
        err = SAFETY * self.G * (mag + (np.abs(mu) * bd.vmax[rows]).sum(1) + np.abs(c))
        return value, err

    def evidence(self, bd: _Bounds, rows, d: int, w, g, relax: _Relax):
        """Lower bound (value, error) of ``w . (R_d [v; y] - r_d) + g . (A v - b) + ...`` over the regions."""
        cons, extra, n = self.query.disjuncts[d].constraints, self.query.input_constraints, self.query.num_inputs
        Rv, Ry, A = cons.matrix[:, :n], cons.matrix[:, n:], extra.matrix
        vmax = bd.vmax[rows]
        cv = w @ Rv + g @ A
        c0 = -(w @ cons.rhs) - g @ extra.rhs
        mag = ((np.abs(w) @ np.abs(Ry)) * bd.zmag[-1][rows]).sum(1) + np.abs(w) @ np.abs(cons.rhs) \
            + ((np.abs(w) @ np.abs(Rv) + np.abs(g) @ np.abs(A)) * vmax).sum(1) + np.abs(g) @ np.abs(extra.rhs)
        mu, c, more = self.backward(bd, rows, w @ Ry, len(self.W) - 1, relax)
        mag += more + ((np.abs(mu) + np.abs(cv)) * vmax).sum(1) + np.abs(c0)
        return self.finish(bd, rows, mu + cv, c + c0, mag)

    # -- the leaves of one tree, LEAVES_PER_CHUNK at a time in node order
    def check_tree(self, tree: _Tree) -> None:
        L = tree.leaf_node.size
        order = np.argsort(tree.leaf_node)
        rank = np.empty(L, dtype=np.int64)
        rank[order] = np.arange(L)
        root = None
        if tree.bounds_at == "root":
            root = self.bounds(tree.lower[None], np.maximum(tree.lower, tree.upper)[None])
            self.tighten(root, tree)
        sparse = [(a, np.argsort(rank[a[0]], kind="stable")) for a in (tree.sparse, tree.farkas)]
        for start in range(0, L, LEAVES_PER_CHUNK):
            pos = order[start : start + LEAVES_PER_CHUNK]
            nodes = tree.leaf_node[pos]
            lo, hi, phase = self.paths(tree, nodes)
            empty = np.any(lo > hi, axis=1)
            if root is None:
                bd = self.bounds(lo, np.where(empty[:, None], lo, hi))
            else:
                bd = _Bounds(lo, hi)
                bd.zmag = [np.repeat(z, pos.size, axis=0) for z in root.zmag]
                bd.l, bd.u = [np.repeat(a, pos.size, axis=0) for a in root.l], [np.repeat(a, pos.size, axis=0) for a in root.u]
            for k in range(len(self.sizes)):
                ph = phase[:, self.offsets[k] : self.offsets[k + 1]]
                bd.l[k] = np.where(ph == 1, np.maximum(bd.l[k], 0.0), bd.l[k])
                bd.u[k] = np.where(ph == 2, np.minimum(bd.u[k], 0.0), bd.u[k])
                empty |= np.any(bd.l[k] > bd.u[k], axis=1)
            bd.tables.clear()  # the phases may have changed l, u
            entries = []  # per evidence kind: this chunk's sparse entries, as (their indices, local leaf)
            for (arrays, by_rank) in sparse:
                ranks = rank[arrays[0][by_rank]]
                e = by_rank[np.searchsorted(ranks, start) : np.searchsorted(ranks, start + pos.size)]
                entries.append((e, rank[arrays[0][e]] - start))
            value, err = np.full(pos.size, np.nan), np.full(pos.size, np.nan)
            notes = {}
            for kind in (0, 1):
                sel = np.flatnonzero((tree.leaf_kind[pos] == kind) & ~empty)
                if sel.size:
                    local = np.full(pos.size, -1)
                    local[sel] = np.arange(sel.size)
                    e, where = entries[kind]
                    keep = local[where] >= 0
                    make = self.bound_params if kind == 0 else self.lp_params
                    w, g, relax = make(tree, bd, pos, sel, phase, e[keep], local[where[keep]], notes)
                    value[sel], err[sel] = self.evidence(bd, sel, tree.disjunct, w, g, relax)
            ok = empty | (value - err > 0)
            ok[list(notes)] = False
            bad = np.flatnonzero(~ok)
            if bad.size:
                j, node = bad[0], int(nodes[bad[0]])
                kind = "bound evidence: bound" if tree.leaf_kind[pos[j]] == 0 else "LP (Farkas) evidence: minimum"
                why = notes.get(j) or f"{kind} {value[j]:.6g} after rounding error {err[j]:.2g} is not positive"
                raise Invalid(f"{tree.where(node)}: {why}", disjunct=tree.disjunct, node=node, path=tree.path(node),
                              bound=None if np.isnan(value[j]) else float(value[j]),
                              rounding_error=None if np.isnan(err[j]) else float(err[j]))

    def paths(self, tree: _Tree, nodes):
        """The boxes and ReLU phases (1 active, 2 inactive) of the leaves ``nodes``, from their paths."""
        lo, hi = np.repeat(tree.lower[None], nodes.size, 0), np.repeat(tree.upper[None], nodes.size, 0)
        phase = np.zeros((nodes.size, self.n_relus), dtype=np.int8)
        cur, rows = nodes.copy(), np.arange(nodes.size)
        while np.any(cur > 0):
            r, nd = rows[cur > 0], cur[cur > 0]
            kind, idx, val = tree.kind[nd], tree.index[nd], tree.value[nd]
            s = kind == INPUT_LOWER
            hi[r[s], idx[s]] = np.minimum(hi[r[s], idx[s]], val[s])
            s = kind == INPUT_UPPER
            lo[r[s], idx[s]] = np.maximum(lo[r[s], idx[s]], val[s])
            s = kind >= ACTIVE
            twice = np.flatnonzero(phase[r[s], idx[s]] != 0)
            if twice.size:
                node = int(nodes[r[s][twice[0]]])
                raise Invalid(f"{tree.where(node)}: ReLU {idx[s][twice[0]]} is split twice on the path",
                              disjunct=tree.disjunct, node=node, path=tree.path(node))
            phase[r[s], idx[s]] = kind[s] - 2
            cur[cur > 0] = tree.parent[nd]
        return lo, hi, phase

    def bound_params(self, tree, bd, pos, sel, phase, e, at, notes):
        s_leaf, s_relu, alpha, bl, bu = tree.sparse
        relax = _Relax("bound")
        if e.size:
            relax.a = np.full((sel.size, self.n_relus), np.nan)
            relax.b, relax.c = np.zeros((sel.size, self.n_relus)), np.zeros((sel.size, self.n_relus))
            relax.a[at, s_relu[e]], relax.b[at, s_relu[e]], relax.c[at, s_relu[e]] = alpha[e], bl[e], bu[e]
        return tree.weights[pos[sel]], tree.gamma[pos[sel]], relax

    def lp_params(self, tree, bd, pos, sel, phase, e, at, notes):
        """Dense multipliers from the sparse Farkas entries, by the row order of the document."""
        rows, extra = tree.weights.shape[1], tree.gamma.shape[1]
        unstable = np.concatenate([(l[sel] < 0) & (u[sel] > 0) for l, u in zip(bd.l, bd.u)]
                                  or [np.zeros((sel.size, 0), dtype=bool)], axis=1)
        split = phase[sel] != 0
        nu, ns = unstable.sum(1), split.sum(1)
        ucol, scol = np.nonzero(unstable)[1], np.nonzero(split)[1]
        ustart, sstart = np.cumsum(nu) - nu, np.cumsum(ns) - ns
        P, Q, T = (np.zeros((sel.size, self.n_relus)) for _ in range(3))
        W, G = np.zeros((sel.size, rows)), np.zeros((sel.size, extra))
        f, y = tree.farkas[1][e], tree.farkas[2][e]
        two, three = 2 * nu[at], 2 * nu[at] + ns[at]  # rows: relaxation pairs, split rows, R_d, input rows
        m = f < two
        relu = ucol[ustart[at[m]] + f[m] // 2]
        P[at[m][f[m] % 2 == 0], relu[f[m] % 2 == 0]] = y[m][f[m] % 2 == 0]
        Q[at[m][f[m] % 2 == 1], relu[f[m] % 2 == 1]] = y[m][f[m] % 2 == 1]
        m = (f >= two) & (f < three)
        relu = scol[sstart[at[m]] + f[m] - two[m]]
        T[at[m], relu] = np.where(phase[sel][at[m], relu] == 2, y[m], -y[m])
        m = (f >= three) & (f < three + rows)
        W[at[m], f[m] - three[m]] = y[m]
        m = (f >= three + rows) & (f < three + rows + extra)
        G[at[m], f[m] - three[m] - rows] = y[m]
        for j in np.flatnonzero(f >= three + rows + extra):
            notes.setdefault(sel[at[j]], f"Farkas row {f[j]} is beyond the leaf's LP ({three[j] + rows + extra} rows)")
        return W, G, _Relax("lp", P, Q, T)
