"""Every command of ``python -m minidl`` answers ``--help`` with its options."""
import subprocess
import sys

import pytest

from minidl.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["fly"])
    assert "unknown command 'fly'" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_has_help(command):
    run = subprocess.run([sys.executable, "-m", "minidl", command, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage" in run.stdout.lower()


def test_experiment_commands_run_outside_the_repository(tmp_path):
    """benchmarks/report.py sits beside the package; the CLI finds it from any directory."""
    run = subprocess.run([sys.executable, "-m", "minidl", "graph", "--seeds", "1", "--epochs", "2", "--no-write",
                          "--quiet"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "AUC" in run.stdout
