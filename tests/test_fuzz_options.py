"""Fuzzing the command line's time options: every ``--timeout`` and its kin take a finite number of seconds.

Each time option of each command (``--timeout`` of verify, max-delta, vnnlib and sweep,
``--subdomain-timeout``, ``--probe-timeout``, sweep's ``--kill-grace``, the ``--lock-timeout`` of sweep
and report, bench's ``--cap`` and ``--timeout-scale``) gets random text: the parser returns a finite
value > 0 (>= 0 where zero means "at once": ``--kill-grace``, ``--lock-timeout``), or the command
ends with one line naming the option and exit status 2 -- a negative, zero, NaN or infinite time is
never accepted, so no query ends "time budget exhausted" before it starts.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_contract import clean, ErrorLine, fuzz_settings, run_main
from reluverify.cli import build_parser

BASE = {
    "verify": ["verify", "net.onnx", "--point", "p.json", "--delta", "0.1"],
    "max-delta": ["max-delta", "net.onnx", "--point", "p.json"],
    "vnnlib": ["vnnlib", "net.onnx", "spec.vnnlib"],
    "sweep": ["sweep", "net.onnx", "--points", "p.json", "--delta", "0.1", "--db", "s.sqlite"],
    "report": ["report", "s.sqlite"],
    "bench": ["bench", "folder"],
}
OPTIONS = [  # (command, option, zero allowed)
    ("verify", "--timeout", False),
    ("verify", "--subdomain-timeout", False),
    ("max-delta", "--timeout", False),
    ("max-delta", "--probe-timeout", False),
    ("vnnlib", "--timeout", False),
    ("sweep", "--timeout", False),
    ("sweep", "--kill-grace", True),
    ("sweep", "--lock-timeout", True),
    ("report", "--lock-timeout", True),
    ("bench", "--cap", False),
    ("bench", "--timeout-scale", False),
]
TEXT = st.one_of(
    st.sampled_from(["-1", "0", "-0", "0.0", "nan", "NaN", "inf", "-inf", "1e309", "1e-320", "5", "0.5", "1e308",
                     "", " ", "x", "1_0", "0x10", "\u0663"]),
    st.floats().map(repr),
    st.text(max_size=8),
)


def _parse(argv):
    from reluverify.cli import ArgumentsError

    try:
        return build_parser().parse_args(argv)
    except ArgumentsError as exc:
        return ErrorLine(str(exc))


@fuzz_settings(300)
@given(st.sampled_from(OPTIONS), TEXT)
def test_time_options_take_a_finite_number_of_seconds(option, text):
    command, flag, zero = option
    parsed = clean(_parse, [*BASE[command], f"{flag}={text}"])
    if isinstance(parsed, ErrorLine):
        assert flag in parsed and "\n" not in parsed, parsed
        return
    value = getattr(parsed, flag.lstrip("-").replace("-", "_"))
    assert math.isfinite(value) and (value >= 0 if zero else value > 0), (flag, text, value)


@pytest.mark.parametrize("command, flag, zero", OPTIONS)
@pytest.mark.parametrize("text", ["-1", "0", "nan", "inf"])
def test_a_meaningless_time_is_one_line_and_exit_2(command, flag, zero, text):
    """``--timeout -1`` (and 0, nan, inf) is refused before anything runs, with one line naming the option;
    0 is read as 0 where it means "at once" (``--kill-grace``, ``--lock-timeout``)."""
    if zero and text == "0":
        parsed = _parse([*BASE[command], f"{flag}={text}"])
        assert getattr(parsed, flag.lstrip("-").replace("-", "_")) == 0.0
        return
    status, out, err = run_main([*BASE[command], f"{flag}={text}"])
    assert status == 2 and not out and f"argument {flag}: must be a finite number" in err, err


@pytest.mark.parametrize("text", ["-1", "0", "nan", "inf"])
def test_a_meaningless_instance_timeout_in_a_benchmark_folder_is_one_line(tmp_path, text):
    """``bench``'s instance timeouts come from the folder's CSV: the same rule, naming the file and line."""
    (tmp_path / "instances.csv").write_text(f"net.onnx,spec.vnnlib,60\nnet.onnx,spec.vnnlib,{text}\n")
    status, _, err = run_main(["bench", tmp_path])
    assert status == 2 and "instances.csv:2: timeout" in err, err
