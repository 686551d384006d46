"""Fuzzing the VNN-LIB reader: random and mutated specifications end in a query or one clean line.

Three sources of input, each checked against :mod:`fuzz_contract` (a value, or one
``ReluverifyError`` line; never another exception, never a hang):

* specifications drawn from the grammar with corruption mixed in (unknown operators and
  commands, strict comparisons, bad names, huge, tiny and malformed numbers, missing bounds);
* real specifications (ACAS Xu, the test benchmark, the shipped one) mutated: spans deleted or
  duplicated, stray bytes and tokens inserted, numbers replaced, assertions wrapped in deep
  nesting, very long lines, truncation;
* the shapes that once broke the reader, by hand: 50,000 levels of ``(or (or ...))`` and of
  other connectives and terms, decided or refused in under a second.

Most inputs go through the Python entry point the command line uses (``read_vnnlib`` and
``VnnlibSpec.to_query``); some through ``reluverify vnnlib`` in this process, which also solves
what parses; a few through the real command line in a subprocess.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_contract import ErrorLine, clean, fuzz_settings, run_cli, run_main
from random_queries import chain_to_onnx, random_chain
from reluverify.network import ReluChain
from reluverify.vnnlib import parse_vnnlib, read_vnnlib

REPO = Path(__file__).resolve().parents[1]
DEPTH = 50_000


def _network(n_in: int, n_out: int):
    return ReluChain((np.ones((n_out, n_in)),), (np.zeros(n_out),)).to_network()


def _check_spec(text: str, path: str = "fuzz.vnnlib"):
    """Parse, then compile against a network of the declared sizes (and of wrong sizes)."""
    spec = clean(parse_vnnlib, text, path)
    if isinstance(spec, ErrorLine):
        assert spec.startswith(path), spec
        return spec
    assert spec.num_inputs >= 1 and spec.num_outputs >= 1
    if spec.num_inputs <= 1000 and spec.num_outputs <= 1000:
        query = clean(spec.to_query, _network(spec.num_inputs, spec.num_outputs))
        if not isinstance(query, ErrorLine):
            assert np.all(np.isfinite(query.lower)) and np.all(query.lower <= query.upper)
            for d in query.disjuncts:
                assert np.all(np.isfinite(d.constraints.matrix)) and np.all(np.isfinite(d.constraints.rhs))
        assert isinstance(clean(spec.to_query, _network(spec.num_inputs + 1, spec.num_outputs)), ErrorLine)
    return spec


# ------------------------------------------------------------------ the grammar, with corruption
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**400), 10**400).map(str),
    st.sampled_from(["0", "-0", "1", "-1", ".5", "5.", "+.5e-3", "1e308", "1.8e308", "1e309", "-1e400", "1e-320",
                     "4.9e-324", "1e-400", "nan", "inf", "-inf", "NaN", "1e", "--1", "0x10", "1_0", "\u0663",
                     "1\u0663", "0.1e+0001"]),
)
NAMES = st.sampled_from(["X_0", "X_1", "X_2", "Y_0", "Y_1", "Y_2", "X_7", "Y_00", "X_01", "x_0", "X_", "X_-1",
                         "X_1\u0663", "Z_0", "X_0.5", "Y_99999999999999999999"])


def _render(head: str, parts: list[str]) -> str:
    return "(" + " ".join([head, *parts]) + ")"


TERMS = st.recursive(
    st.one_of(NAMES, NUMBERS),
    lambda inner: st.builds(_render, st.sampled_from(["+", "-", "*", "/", "+", "-", "*", "ite", "abs", "max"]),
                            st.lists(inner, max_size=4)),
    max_leaves=12,
)
COMPARISONS = st.builds(_render, st.sampled_from(["<=", ">=", "=", "<=", ">=", "<", ">", "distinct"]),
                        st.lists(TERMS, max_size=3))
FORMULAS = st.recursive(
    st.one_of(COMPARISONS, st.sampled_from(["true", "false", "junk", "()", "(())"])),
    lambda inner: st.builds(_render, st.sampled_from(["and", "or", "and", "or", "not", "xor", "=>"]),
                            st.lists(inner, max_size=4)),
    max_leaves=16,
)
SEPARATORS = st.sampled_from([" ", "\n", "\t", "  ", "\r\n", " ; a comment (with parens\n", "\n\n"])


@st.composite
def grammar_specs(draw) -> str:
    n, m = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    commands = [f"(declare-const X_{i} Real)" for i in range(n)] + [f"(declare-const Y_{j} Real)" for j in range(m)]
    for i in range(n):
        if draw(st.integers(0, 9)):  # mostly bounded inputs, sometimes not
            lo = draw(st.sampled_from(["-1", "0", "-0.5", "1e-320", "-1e308"]))
            hi = draw(st.sampled_from(["1", "0.5", "0", "1e308", "-1"]))
            commands += [f"(assert (>= X_{i} {lo}))", f"(assert (<= X_{i} {hi}))"]
    commands += [f"(assert {f})" for f in draw(st.lists(FORMULAS, min_size=1, max_size=3))]
    extra = draw(st.sampled_from(["", "", "", "(declare-const X_0 Real)", "(declare-const X_9 Int)", "(check-sat)",
                                  "(declare-fun f () Real)", "(assert)", "(assert true false)", "foo", ")", "(",
                                  "(declare-const Y_0 Real Real)", "(set-logic QF_LRA)"]))
    commands.insert(draw(st.integers(0, len(commands))), extra)
    return "".join(c + draw(SEPARATORS) for c in commands)


@fuzz_settings(250)
@given(grammar_specs())
def test_grammar_specs_parse_or_fail_cleanly(text):
    _check_spec(text)


# ------------------------------------------------------------------ mutated real specifications
def _real_specs() -> list[str]:
    from conftest import BENCHMARKS

    paths = sorted((BENCHMARKS / "acasxu").glob("prop_*.vnnlib")) + sorted((BENCHMARKS / "test").glob("*.vnnlib"))
    paths.append(REPO / "networks" / "acas_like_prop3.vnnlib")
    return [p.read_text() for p in paths if p.exists()]


REAL = _real_specs()
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])[+-]?\d+\.?\d*(?:[eE][+-]?\d+)?")
INSERTS = ["(", ")", "((", "))", "(or", "(and", "(not", " 1e400 ", " -1e-400 ", "\x00", "\ufeff", "\u2028", "\x0c",
           " Y_99 ", " X_5 ", "(< X_0 1)", "(declare-const X_0 Real)", ";", "\n", "(assert (<= X_0 nan))",
           "(assert (or))", "(assert (and))", "(assert false)", "(<= (* X_0 Y_0) 1)", "(/ X_0 0)", "\\", "|x|",
           "\"str\"", "#b101", "(assert (<= (* 1e300 1e300 X_0) 1))", "(assert (<= (* 1e-320 X_0) 1))"]


@st.composite
def mutated_specs(draw) -> str:
    text = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "insert", "number", "truncate", "nest", "long",
                                     "swap", "rename"]))
        at = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 200)):]
        elif kind == "duplicate":
            text = text[:at] + text[at:at + draw(st.integers(1, 400))] + text[at:]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(INSERTS)) + text[at:]
        elif kind == "number":
            numbers = list(_NUMBER_IN_TEXT.finditer(text))
            if numbers:
                match = numbers[draw(st.integers(0, len(numbers) - 1))]
                text = text[:match.start()] + draw(NUMBERS) + text[match.end():]
        elif kind == "truncate":
            text = text[:at]
        elif kind == "nest":  # an assertion's formula wrapped in deep nesting
            start = text.find("(assert ", at)
            if start >= 0:
                depth = draw(st.sampled_from([1, 30, 3000, 20000]))
                heads = draw(st.lists(st.sampled_from(["or", "and"]), min_size=1, max_size=2))
                opening = "".join(f"({heads[k % len(heads)]} " for k in range(depth))
                body_start = start + len("(assert ")
                end = _matching(text, start)
                if end is not None:
                    text = text[:body_start] + opening + text[body_start:end] + ")" * depth + text[end:]
        elif kind == "long":  # one very long line: a sum of many terms, or a long comment, or a long token
            what = draw(st.sampled_from(["sum", "comment", "token"]))
            size = draw(st.sampled_from([1000, 100_000]))
            line = {"sum": "(assert (<= (+ " + "Y_0 " * size + ") 1e300))",
                    "comment": ";" + "x" * (10 * size),
                    "token": "(assert (<= Y_0 " + "9" * size + "))"}[what]
            text = text[:at] + "\n" + line + "\n" + text[at:]
        elif kind == "swap":
            text = text.replace("<=", "\0").replace(">=", "<=").replace("\0", ">=")
        else:
            text = re.sub(r"X_(\d+)", lambda mt: f"X_{int(mt.group(1)) + draw(st.sampled_from([0, 1, 100]))}", text, count=1)
    return text


def _matching(text: str, start: int) -> int | None:
    """Index of the ')' that closes the '(' at ``start``'s inner formula's end (the assert's close)."""
    depth = 0
    for k in range(start, len(text)):
        if text[k] == "(":
            depth += 1
        elif text[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    return None


@pytest.mark.skipif(not REAL, reason="no benchmark specifications")
@fuzz_settings(200)
@given(mutated_specs())
def test_mutated_real_specs_parse_or_fail_cleanly(text):
    _check_spec(text)


@fuzz_settings(60)
@given(st.binary(max_size=400), st.sampled_from(REAL or ["(declare-const X_0 Real)"]), st.integers(0, 10_000))
def test_stray_bytes_in_a_file(tmp_path_factory, blob, text, at):
    path = tmp_path_factory.mktemp("bytes") / "spec.vnnlib"
    data = text.encode()
    path.write_bytes(data[:at] + blob + data[at:])
    clean(read_vnnlib, path)


# ------------------------------------------------------------------ through the command line
_NETWORKS: dict[tuple[int, int], str] = {}


def _onnx_for(n: int, m: int, folder: Path) -> str:
    if (n, m) not in _NETWORKS:
        chain = random_chain(np.random.default_rng(n * 10 + m), [n, 6, 6, m])
        _NETWORKS[(n, m)] = chain_to_onnx(chain, folder / f"net_{n}_{m}.onnx", dtype=np.float32)
    return _NETWORKS[(n, m)]


@fuzz_settings(50, deadline_s=30)
@given(st.one_of(grammar_specs(), mutated_specs() if REAL else grammar_specs()))
def test_vnnlib_command_decides_or_fails_cleanly(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("cli")
    spec_path = folder / "spec.vnnlib"
    spec_path.write_text(text)
    spec = clean(parse_vnnlib, text)
    n, m = (1, 1) if isinstance(spec, ErrorLine) else (spec.num_inputs, spec.num_outputs)
    if n > 10 or m > 10:
        n, m = 1, 1  # the size mismatch is the error then
    status, out, _ = run_main(["vnnlib", _onnx_for(n, m, folder), spec_path, "--timeout", "2"])
    if status == 0:
        assert out.split("\n", 1)[0] in ("sat", "unsat", "unknown", "timeout")


# ------------------------------------------------------------------ shapes that once broke the reader
HEADER = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1))\n(assert (>= X_0 0))\n"
DEEP = {
    "or": "(assert " + "(or " * DEPTH + "(<= Y_0 0)" + ")" * DEPTH + ")\n",
    "and": "(assert " + "(and " * DEPTH + "(<= Y_0 0)" + ")" * DEPTH + ")\n",
    "or-and": "(assert " + "(or (<= Y_0 -1) (and (>= Y_0 -2) " * (DEPTH // 2) + "(<= Y_0 0)" + "))" * (DEPTH // 2) + ")\n",
    "plus": "(assert (<= " + "(+ 1 " * DEPTH + "Y_0" + ")" * DEPTH + " 0))\n",
    "minus": "(assert (<= " + "(- " * DEPTH + "Y_0" + ")" * DEPTH + " 0))\n",
    "times": "(assert (<= " + "(* 1 " * DEPTH + "Y_0" + ")" * DEPTH + " 0))\n",
    "parens": "(assert " + "(" * DEPTH + ")" * DEPTH + ")\n",
    "unclosed": "(assert " + "(or " * DEPTH + "\n",
}


@pytest.mark.parametrize("shape", sorted(DEEP))
def test_deep_nesting_is_decided_or_refused(shape):
    text = HEADER + DEEP[shape]
    start = time.perf_counter()
    result = _check_spec(text, "deep.vnnlib")
    seconds = time.perf_counter() - start
    if shape in ("or", "and", "plus", "minus", "times"):
        assert not isinstance(result, ErrorLine), result
        assert len(result.disjuncts) == 1
    if shape in ("parens", "unclosed"):
        assert isinstance(result, ErrorLine)
    if shape == "or":  # the case of the issue: 50,000 levels of (or (or ...)) in under a second
        assert seconds < 1.0, f"{seconds:.2f} s"
    assert seconds < 30.0, f"{seconds:.2f} s"  # no hang (the or-and shape takes ~8 s: 50,000 nested disjunctions)


def test_deep_or_through_the_command_line(tmp_path, test_bench_dir):
    spec = tmp_path / "deep.vnnlib"
    spec.write_text(HEADER + DEEP["or"])
    proc = run_cli(["vnnlib", test_bench_dir / "test_small.onnx", spec, "--timeout", "10"])
    assert proc.returncode == 0 and proc.stdout.split("\n", 1)[0] in ("sat", "unsat"), proc.stderr


def test_numbers_at_the_edges_of_float64():
    header = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
    bounds = "(assert (>= X_0 -1)) (assert (<= X_0 1))\n"
    spec = _check_spec(header + bounds + "(assert (<= Y_0 1e308)) (assert (>= Y_0 4.9e-324))")
    assert not isinstance(spec, ErrorLine)
    assert "out of range" in _check_spec(header + bounds + "(assert (<= Y_0 1e309))")
    assert "overflows" in _check_spec(header + bounds + "(assert (<= (* 1e300 1e300 Y_0) 1))")
    assert "overflows" in _check_spec(header + bounds + "(assert (<= (+ 1e308 1e308) Y_0))")
    message = _check_spec(header + "(assert (>= X_0 -1)) (assert (<= (* 1e-320 X_0) 1))")
    assert isinstance(message, ErrorLine) and "X_0" in message


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "nul", "latin-1", "directory"])
def test_a_spec_that_is_not_text_or_never_ends_is_refused_at_once(tmp_path, kind):
    """``reluverify vnnlib NET /dev/zero`` (or a FIFO no one writes to, a NUL byte, bytes that are not
    UTF-8): one line naming the file within a second, never a hang."""
    import os

    path = {"/dev/zero": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / "spec.vnnlib")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "nul":
        path.write_bytes(HEADER.encode() + b"\0" + HEADER.encode())
    elif kind == "latin-1":
        path.write_bytes(HEADER.encode() + "; caf\u00e9\n".encode("latin-1"))
    start = time.perf_counter()
    message = clean(read_vnnlib, path)
    assert isinstance(message, ErrorLine) and message.startswith(str(path)), message
    status, _, err = run_main(["vnnlib", _onnx_for(1, 1, tmp_path), path, "--timeout", "2"], seconds=10)
    assert status == 2 and str(path) in err
    assert time.perf_counter() - start < 5.0


def test_huge_input_bounds_in_a_spec_are_one_line(tmp_path):
    """Bounds beyond float32's range (no network input lies there) are refused with one line; bounds
    within it give a verdict."""
    for bound, refused in (("1e308", True), ("1e30", False)):
        spec = tmp_path / f"spec{bound}.vnnlib"
        spec.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                        f"(assert (>= X_0 -{bound}))\n(assert (<= X_0 {bound}))\n(assert (<= Y_0 -1e40))\n")
        status, out, err = run_main(["vnnlib", _onnx_for(1, 1, tmp_path), spec, "--timeout", "5"])
        assert (status, "3.4e+38" in err) == ((2, True) if refused else (0, False)), (bound, out, err)
