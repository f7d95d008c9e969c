"""The package as a user meets it: import cost, the console script, the README commands."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zoo import cli

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


def test_import_zoo_needs_neither_datasets_nor_flax():
    code = ("import sys; sys.modules['datasets'] = None\n"
            "import zoo\n"
            "assert 'flax' not in sys.modules, 'flax imported by import zoo'\n"
            "import jax; spec = zoo.get('mlp-tiny')\n"
            "spec.apply(spec.init(jax.random.key(0)), *spec.example_inputs(jax.random.key(1), 2))\n"
            "print('ok')")
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_demo_learns_the_gates(capsys):
    assert cli.main(["demo"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"AND\s+accuracy\s+100%\s+converged", text)
    assert re.search(r"OR\s+accuracy\s+100%\s+converged", text)
    assert re.search(r"XOR\s+accuracy\s+\d+%\s+did not converge", text)
    assert re.search(r"MLP.*\n\s+XOR\s+accuracy\s+100%", text)


def test_list_and_info(capsys):
    assert cli.main(["list"]) == 0
    assert "mlp-tiny" in capsys.readouterr().out
    assert cli.main(["info", "mlp-tiny"]) == 0
    out = capsys.readouterr().out
    assert "['dense_0']['w']" in out and "P('embed', 'hidden')" in out


def test_unknown_model_is_a_clear_error(capsys):
    assert cli.main(["info", "no-such-model"]) == 2
    assert "no model named 'no-such-model'" in capsys.readouterr().err


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    assert len(blocks) >= 2
    first, second = blocks[0].strip(), blocks[1].strip()
    assert "pip install" in first and "zoo" in first
    assert "pip install" in second and "pytest" in second
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = second.splitlines()[-1].strip()
    assert test_command in ci, f"CI must run README's test command: {test_command!r}"


def test_bench_subcommand_is_the_table1_suite(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--help"])
    assert exit_.value.code == 0
    assert "Table 1" in capsys.readouterr().out


def test_bio_subcommand_lists_runs_and_refuses_clearly(capsys, tmp_path):
    assert cli.main(["bio", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(app in out for app in cli.BIO_APPS)
    assert cli.main(["bio", "no-such-app"]) == 2
    assert "unknown application 'no-such-app'" in capsys.readouterr().err
    assert cli.main(["bio", "mi", "--data-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "zoo bio mi: error" in err and "pfam_domains_structures" in err
    for module in set(cli.BIO_APPS.values()):      # every application has its entry point
        import importlib
        assert callable(importlib.import_module(f"zoo.bio.{module}").main)
