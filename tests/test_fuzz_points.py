"""Fuzzing the point, domain, points and labels readers (``.npy``, ``.csv``, ``.json``, ``.npz``) and ``--domain``.

Every reader -- ``load_point_and_domain`` and ``load_domain`` (``reluverify verify`` and
``max-delta``), ``read_point_set`` (``verify --points``, ``sweep``), ``read_labels`` (``--labels``)
and ``read_domain`` (``--domain``, a file or ``LO:HI``) -- gets random files of each kind: JSON
values of any shape (huge integers, NaN, deep nesting, wrong keys, labels of every type), CSV text
made of numbers, names, blanks, comments and junk, ``.npy`` files of every dtype and shape, with
damaged headers or truncated data, ``.npz`` archives of such arrays under the names the readers
look for (or damaged), and random bytes under each suffix; ``read_domain`` also gets random
``LO:HI`` text. Each must return checked values or raise one clean line (:mod:`fuzz_contract`).
Some files also go through ``reluverify verify`` and ``sweep`` in this process.
"""

from __future__ import annotations

import io
import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzz_contract import ErrorLine, clean, fuzz_settings, run_cli, run_main
from reluverify.properties.inputs import load_domain, load_point_and_domain, read_domain, read_labels
from reluverify.properties.inputs import read_point_set

SIZE = 3
OUTPUTS = 2
KEYS = ["point", "x", "input", "domain", "lower", "upper", "points", "labels", "label", "other"]
NUMBERS = st.one_of(st.integers(-(10**400), 10**400), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 0.5, 1e308, 5e-324]))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=20,
)


LABELS = st.one_of(
    st.lists(st.integers(0, OUTPUTS - 1), min_size=1, max_size=5),
    st.lists(st.one_of(st.integers(-2, OUTPUTS + 1), st.sampled_from([0.0, 1.0, 0.5, "1", None, True, 10**400,
                                                                      float("nan"), [1]])), max_size=5),
)
VALUES = st.one_of(st.floats(-2, 2), NUMBERS)


@st.composite
def json_files(draw) -> bytes:
    kind = draw(st.sampled_from(["value", "value", "point", "points", "labels", "domain", "deep", "broken"]))
    if kind == "points":
        value = {"points": draw(st.lists(st.lists(st.floats(-2, 2) if draw(st.booleans()) else VALUES, min_size=SIZE,
                                                  max_size=SIZE), max_size=4))}
        count = len(value["points"])
        value["labels"] = draw(st.sampled_from([None, "fitting", "any"]))
        value["labels"] = None if value["labels"] is None else draw(
            st.lists(st.integers(0, OUTPUTS - 1), min_size=count, max_size=count) if value["labels"] == "fitting"
            else LABELS)
        value["domain"] = draw(st.sampled_from([None, {"lower": -2, "upper": 2}, {"lower": 0, "upper": 1},
                                                [[-2, 2]] * SIZE]))
    elif kind == "labels":
        value = draw(st.one_of(LABELS, st.fixed_dictionaries({"labels": LABELS})))
    elif kind == "point":
        value = {"point": draw(st.lists(NUMBERS, min_size=SIZE - 1, max_size=SIZE + 1))}
        if draw(st.booleans()):
            value["domain"] = draw(st.one_of(JSON_VALUES, st.fixed_dictionaries(
                {"lower": st.one_of(NUMBERS, st.lists(NUMBERS, max_size=SIZE + 1)),
                 "upper": st.one_of(NUMBERS, st.lists(NUMBERS, max_size=SIZE + 1))})))
    elif kind == "domain":
        value = {"lower": draw(st.lists(NUMBERS, min_size=SIZE, max_size=SIZE)),
                 "upper": draw(st.lists(NUMBERS, min_size=SIZE, max_size=SIZE))}
    elif kind == "deep":
        depth = draw(st.sampled_from([100, 5000, 100_000]))
        return ("[" * depth + "1" + "]" * depth).encode()
    elif kind == "broken":
        text = json.dumps(draw(JSON_VALUES))
        at = draw(st.integers(0, len(text)))
        return (text[:at] + draw(st.sampled_from(["", "{", "]", ",", "\x00", "\ufeff", "NaN"])) + text[at + 1:]).encode()
    else:
        value = draw(JSON_VALUES)
    return json.dumps(value).encode()


CELLS = st.one_of(NUMBERS.map(str), st.sampled_from(["", " ", "nan", "inf", "-inf", "x0", "1e999", "1_0", "0x1", "'1'",
                                                     "\"2\"", "1;2", "\t3", "#", "1,,2", "\u0663", "1 2"]))


@st.composite
def csv_files(draw) -> bytes:
    lines = draw(st.lists(st.lists(CELLS, max_size=SIZE + 2).map(",".join), max_size=6))
    if draw(st.integers(0, 5)) == 0:
        lines.insert(0, "x0,x1,x2")
    if draw(st.integers(0, 5)) == 0:
        lines.append("# a comment")
    if draw(st.integers(0, 8)) == 0:
        lines.append(",".join(["1"] * 100_000))
    data = "\n".join(lines).encode()
    if draw(st.integers(0, 6)) == 0:
        data += draw(st.binary(min_size=1, max_size=20))
    return data


DTYPES = ["float64", "float32", "float16", "int64", "int8", "uint8", "bool", "complex128", "U3", "S2", "datetime64[s]",
          "object", "V8", [("a", "f8"), ("b", "i4")]]


@st.composite
def npy_files(draw) -> bytes:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    if draw(st.integers(0, 4)) == 0:
        shape = draw(st.sampled_from([(SIZE,), (1, SIZE), (2, SIZE), (SIZE, 2), (2, 1, SIZE), (SIZE, 1, 1)]))
    values = draw(st.lists(NUMBERS.filter(lambda v: not isinstance(v, int) or abs(v) < 2**63), min_size=1, max_size=4))
    buffer = io.BytesIO()
    try:
        with np.errstate(all="ignore"):
            array = np.resize(np.asarray(values, dtype=np.float64), shape).astype(dtype)
        np.save(buffer, array, allow_pickle=dtype == object)
    except (ValueError, TypeError, OverflowError):
        np.save(buffer, np.zeros(shape))
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncate", "header", "shape", "flip"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "header":  # the header's dict text replaced by junk
        data = data[:10] + draw(st.binary(min_size=1, max_size=30)) + data[40:]
    elif damage == "shape":  # a header that claims a huge shape
        data = data.replace(str(shape).encode(), b"(1000000000000, 3)", 1)
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    return data


@st.composite
def npz_files(draw) -> bytes:
    """An archive of (possibly damaged) .npy arrays under the names the readers look for, or a damaged archive."""
    import zipfile

    names = draw(st.lists(st.sampled_from(["points", "point", "x", "labels", "y", "lower", "upper", "arr_0", "other"]),
                          min_size=1, max_size=4, unique=True))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as archive:
        for name in names:
            archive.writestr(name + ".npy", draw(npy_files()))
        if draw(st.integers(0, 5)) == 0:
            archive.writestr("notes.txt", b"not an array")
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    return data


FILES = st.one_of(json_files().map(lambda d: (".json", d)), csv_files().map(lambda d: (".csv", d)),
                  npy_files().map(lambda d: (".npy", d)), npz_files().map(lambda d: (".npz", d)),
                  st.tuples(st.sampled_from([".json", ".csv", ".npy", ".npz", ".txt", ""]), st.binary(max_size=200)))


def _check_readers(path) -> None:
    result = clean(load_point_and_domain, path, SIZE)
    if not isinstance(result, ErrorLine):
        point, domain = result
        assert point.shape == (SIZE,) and np.all(np.isfinite(point))
        if domain is not None:
            assert domain.contains(point) and np.all(domain.lower <= domain.upper)
    domain = clean(load_domain, path, SIZE)
    if not isinstance(domain, ErrorLine):
        assert domain.lower.shape == (SIZE,) and np.all(np.isfinite(domain.lower)) and np.all(domain.lower <= domain.upper)
    found = clean(read_point_set, path, SIZE, OUTPUTS)
    if not isinstance(found, ErrorLine):
        points = found.points
        assert points.ndim == 2 and points.shape[1] == SIZE and points.shape[0] >= 1 and np.all(np.isfinite(points))
        if found.labels is not None:
            _check_labels(found.labels, len(points))
    labels = clean(read_labels, path, None, OUTPUTS)
    if not isinstance(labels, ErrorLine):
        _check_labels(labels, len(labels))
    domain = clean(read_domain, path, SIZE)
    if not isinstance(domain, ErrorLine):
        assert domain.lower.shape == (SIZE,) and np.all(domain.lower <= domain.upper)


def _check_labels(labels, count) -> None:
    assert labels.dtype == np.int64 and labels.shape == (count,) and count >= 1
    assert np.all(labels >= 0) and np.all(labels < OUTPUTS)


@fuzz_settings(500)
@given(FILES)
def test_point_domain_and_points_readers(tmp_path_factory, file):
    suffix, data = file
    path = tmp_path_factory.mktemp("points") / f"input{suffix}"
    path.write_bytes(data)
    _check_readers(path)


@fuzz_settings(30, deadline_s=30)
@given(FILES)
def test_verify_reads_points_and_domains_cleanly(tmp_path_factory, file):
    from random_queries import chain_to_onnx, random_chain

    suffix, data = file
    folder = tmp_path_factory.mktemp("verify")
    point = folder / f"point{suffix}"
    point.write_bytes(data)
    network = folder / "net.onnx"
    if not network.exists():
        chain_to_onnx(random_chain(np.random.default_rng(0), [SIZE, 4, 2]), network, dtype=np.float32)
    run_main(["verify", network, "--point", point, "--delta", "0.1", "--timeout", "2"])
    run_main(["verify", network, "--global", "--domain", point, "--delta", "0.1", "--epsilon", "1", "--timeout", "2"])


def test_deep_json_point_through_the_command_line(tmp_path):
    from random_queries import chain_to_onnx, random_chain

    network = chain_to_onnx(random_chain(np.random.default_rng(0), [SIZE, 4, 2]), tmp_path / "net.onnx", dtype=np.float32)
    point = tmp_path / "deep.json"
    point.write_text("[" * 100_000 + "]" * 100_000)
    proc = run_cli(["verify", network, "--point", point, "--delta", "0.1"])
    assert proc.returncode == 2 and "deep.json" in proc.stderr


BOUND_TEXT = st.one_of(NUMBERS.map(str), st.sampled_from(["", " ", "x", "nan", "inf", "-inf", "1e999", "-0", "0x1", "1_0",
                                                        "\u0663", "--1", "1:", ":"]))
DOMAIN_TEXT = st.one_of(
    st.lists(st.tuples(BOUND_TEXT, st.sampled_from([":", ":", "::", ""]), BOUND_TEXT).map("".join), min_size=1,
             max_size=SIZE + 2).map(",".join),
    st.text(alphabet="0123456789.-+e:, ainf", max_size=30),
    st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t),
)


@fuzz_settings(500)
@given(DOMAIN_TEXT)
def test_domain_text(text):
    domain = clean(read_domain, text, SIZE)
    if not isinstance(domain, ErrorLine):
        assert domain.lower.shape == (SIZE,) and np.all(np.isfinite(domain.upper)) and np.all(domain.lower <= domain.upper)


@fuzz_settings(30, deadline_s=60)
@given(FILES, FILES, DOMAIN_TEXT)
def test_verify_points_and_sweep_read_points_labels_and_domains_cleanly(tmp_path_factory, points, labels, domain):
    from random_queries import chain_to_onnx, random_chain

    folder = tmp_path_factory.mktemp("points")
    points_file, labels_file = folder / f"points{points[0]}", folder / f"labels{labels[0]}"
    points_file.write_bytes(points[1])
    labels_file.write_bytes(labels[1])
    network = chain_to_onnx(random_chain(np.random.default_rng(0), [SIZE, 4, OUTPUTS]), folder / "net.onnx",
                            dtype=np.float32)
    run_main(["verify", network, "--points", points_file, "--labels", labels_file, f"--domain={domain}",
              "--delta", "0.1", "--timeout", "2"])
    run_main(["verify", network, "--points", points_file, "--delta", "0.1", "--timeout", "2"])
    run_main(["sweep", network, "--points", points_file, "--labels", labels_file, "--delta", "0.1", "--timeout", "2",
              "--db", folder / "s.sqlite", "--quiet"])


def test_huge_radii_and_domains_give_a_verdict_or_one_line(tmp_path):
    """A huge but finite delta, upper limit, epsilon or domain bound: a verdict when a domain bounds the
    ball (cut to it, exact), else one line naming the option -- never an internal error."""
    from random_queries import chain_to_onnx, random_chain

    network = chain_to_onnx(random_chain(np.random.default_rng(0), [SIZE, 4, OUTPUTS]), tmp_path / "net.onnx",
                            dtype=np.float32)
    point, points, domain = tmp_path / "point.json", tmp_path / "points.json", tmp_path / "domain.json"
    point.write_text(json.dumps([0.5] * SIZE))
    points.write_text(json.dumps({"points": [[0.5] * SIZE, [0.25] * SIZE]}))
    domain.write_text(json.dumps({"lower": [-1e308] * SIZE, "upper": [1e308] * SIZE}))
    huge_point = tmp_path / "huge.json"
    huge_point.write_text(json.dumps([1e308] * SIZE))
    verify = ["verify", network, "--point", point, "--timeout", "5"]
    refused = {
        "delta": verify + ["--delta", "1e308"],
        "delta ": verify + ["--delta", "1e308", "--epsilon", "1e308"],
        "delta  ": verify + ["--delta", "1e308", "--norm", "1"],
        "upper": ["max-delta", network, "--point", point, "--upper", "1e308", "--timeout", "5"],
        "domain.json": verify + ["--delta", "0.1", "--domain", domain],
        "domain.json ": ["verify", network, "--global", "--domain", domain, "--delta", "0.1", "--epsilon", "1",
                         "--timeout", "5"],
        "huge.json": ["verify", network, "--point", huge_point, "--delta", "0", "--timeout", "5"],
        "delta   ": ["sweep", network, "--points", points, "--delta", "1e308", "--db", tmp_path / "s.sqlite",
                     "--quiet", "--timeout", "5"],
    }
    for word, argv in refused.items():
        status, _, err = run_main(argv)
        assert status == 2 and word.strip() in err and "3.4e+38" in err, (argv, err)
    decided = [
        verify + ["--delta", "1e308", "--domain", "0:1"],
        verify + ["--delta", "1e308", "--domain", "0:1", "--norm", "1"],
        verify + ["--delta", "0.1", "--epsilon", "1e308"],
        ["max-delta", network, "--point", point, "--upper", "1e308", "--domain", "0:1", "--timeout", "5"],
        ["verify", network, "--global", "--domain", "0:1", "--delta", "1e308", "--epsilon", "1", "--norm", "1",
         "--timeout", "5"],
        ["sweep", network, "--points", points, "--delta", "1e308", "--domain", "0:1", "--db", tmp_path / "t.sqlite",
         "--timeout", "5"],
    ]
    for argv in decided:
        status, out, err = run_main(argv)
        assert status == 0 and out.strip(), (argv, err)


def test_an_l1_ball_cut_to_a_domain_keeps_its_points():
    """With a domain the L1 auxiliaries are bounded by the cut box's reach: every point of the cut ball
    still fits (t = |x - c|), and a huge delta leaves only bounds of the domain's size."""
    from reluverify.properties.ball import ball_region

    rng = np.random.default_rng(1)
    for delta in (0.05, 0.3, 2.0, 1e308):
        center = rng.uniform(0, 1, SIZE)
        region = ball_region(center, delta, "1", np.zeros(SIZE), np.ones(SIZE))
        assert np.all(region.upper <= 1.0 + 1e-9) and region.constraints.rhs.max() <= max(SIZE, delta)
        for _ in range(200):
            step = min(delta, 1.0)
            x = np.clip(center + rng.uniform(-step, step, SIZE) * (rng.uniform(size=SIZE) < 0.5), 0, 1)
            corner = rng.integers(0, 2, SIZE).astype(float)
            for y in (x, corner):
                t = np.abs(y - center)
                if t.sum() > delta:
                    continue
                v = np.concatenate([y, t])
                assert np.all(v >= region.lower) and np.all(v <= region.upper)
                assert np.all(region.constraints.matrix @ v <= region.constraints.rhs)


def test_a_points_domain_or_labels_fifo_is_refused_at_once(tmp_path):
    """A FIFO no one writes to (or a device) under a known suffix: one line, never a hang."""
    import os

    from random_queries import chain_to_onnx, random_chain

    network = chain_to_onnx(random_chain(np.random.default_rng(0), [SIZE, 4, OUTPUTS]), tmp_path / "net.onnx",
                            dtype=np.float32)
    fifo, point = tmp_path / "fifo.json", tmp_path / "point.json"
    os.mkfifo(fifo)
    point.write_text(json.dumps([0.5] * SIZE))
    for argv in (["verify", network, "--point", fifo, "--delta", "0.1"],
                 ["verify", network, "--point", point, "--domain", fifo, "--delta", "0.1"],
                 ["verify", network, "--points", point, "--labels", fifo, "--delta", "0.1"]):
        status, _, err = run_main(argv, seconds=10)
        assert status == 2 and "fifo.json: not a regular file" in err, err
