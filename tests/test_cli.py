"""The ``bayeslmm`` console script: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bayeslmm.cli import main


def test_datasets_lists_bundled_data(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("sleepstudy", "iris", "dyestuff", "penicillin", "pastes"):
        assert name in out


def test_reml_summary_matches_lme4(capsys):
    assert main(["fit", "Reaction ~ Days + (Days | Subject)", "--dataset", "sleepstudy",
                 "--method", "reml"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out
    assert "Number of obs: 180, groups:  Subject, 18" in out


def test_ml_json_output(capsys):
    argv = ["fit", "Reaction ~ Days + (Days | Subject)", "--dataset", "sleepstudy",
            "--method", "reml", "--ml", "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["nobs"] == 180
    assert out["reml"]["deviance"] == pytest.approx(1751.93934448899, rel=1e-6)
    rows = {row["parameter"]: row for row in out["compare"]}
    assert rows["fixef[(Intercept)]"]["ml"] == pytest.approx(251.405104848486, rel=1e-6)
    assert rows["sigma"]["ml"] == pytest.approx(25.591907036487, rel=1e-4)


def test_csv_input(tmp_path, capsys):
    from bayeslmm import load_dataset

    path = tmp_path / "dye.csv"
    load_dataset("dyestuff").to_csv(path, index=False)
    assert main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", str(path), "--method", "reml"]) == 0
    assert "REML criterion at convergence: 319.7" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fit", "Reaction ~ Dayz + (1 | Subject)", "--dataset", "sleepstudy"], "'Dayz'"),
        (["fit", "Reaction ~ Days + (1 | Subject", "--dataset", "sleepstudy"], "unbalanced"),
        (["fit", "y ~ x + (1 | g)", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["fit", "y ~ x + (1 | g)", "--data", "missing.csv"], "does not exist"),
        (["explain", "Reaction ~ Days + (1 | Subjekt)", "--dataset", "sleepstudy"], "Subjekt"),
    ],
)
def test_errors_are_one_line_and_nonzero(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayeslmm: error:")
    assert message in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_bad_sampler_options_rejected(capsys):
    argv = ["fit", "Reaction ~ Days + (1 | Subject)", "--dataset", "sleepstudy", "--draws", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayeslmm: error: argument --draws: expected a positive integer, got 0")
    assert len(err.splitlines()) == 1


def test_warnings_are_one_line(tmp_path, capsys):
    from bayeslmm import load_dataset

    path = tmp_path / "sleep.csv"
    load_dataset("sleepstudy").assign(Days=lambda d: d["Days"].where(d.index != 3)).to_csv(path)
    argv = ["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(path), "--method", "reml"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "bayeslmm: warning: dropped 1 of 180 rows with missing values in 'Days'" in err
    assert "cli.py" not in err


def test_console_script_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "bayeslmm.cli", "datasets"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "sleepstudy" in done.stdout
