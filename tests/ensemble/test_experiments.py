"""The ensembles command: a quick smoke run produces a table for every contender."""
import pytest

from minidl.ensemble import experiments


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(["--help"])
    assert exit_info.value.code == 0
    assert "--seeds" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_run_reports_every_contender_and_the_gain_check(capsys):
    assert experiments.main(["--quick", "--seeds", "1", "--datasets", "breast_cancer", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in experiments.contenders(0, quick=True):
        assert f"| {name} |" in out
    assert "Bagging x3 (hard vote)" in out
    assert "Gain check" in out and f"vs {experiments.SINGLE}" in out
    assert "Seed ensemble x5 of the MLP" in out
