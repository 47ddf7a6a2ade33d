"""The optimizer study aid: runs, plots, and behaves as the theory says."""
import numpy as np
import pytest

from minidl.optim import study


@pytest.mark.slow
def test_study_writes_valid_pngs_and_a_table(tmp_path, capsys):
    import matplotlib.image as mpimg

    assert study.main(["--steps", "15", "--out", str(tmp_path), "--quiet"]) == 0
    for name in ("rosenbrock", "beale", "quadratic"):
        png = tmp_path / f"optimizers_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
        assert img[..., :3].std() > 0.05  # not a blank canvas
    table = (tmp_path / "optimizers.md").read_text()
    printed = capsys.readouterr().out
    for opt in study.OPTIMIZERS:
        assert f"| {opt} |" in table and f"| {opt} |" in printed


def test_study_is_reachable_from_the_command_line(tmp_path):
    from minidl import cli

    assert cli.main(["optimizers", "--steps", "3", "--out", str(tmp_path), "--quiet",
                     "--problems", "quadratic"]) == 0
    assert (tmp_path / "optimizers_quadratic.png").exists()
    with pytest.raises(SystemExit) as exc:
        study.main(["--help"])
    assert exc.value.code == 0


def test_gd_on_the_quadratic_is_stable_only_below_two_over_the_largest_eigenvalue():
    quad = study.PROBLEMS["quadratic"]
    assert np.allclose(np.linalg.eigvalsh(study.QUADRATIC_A), [1.0, 75.0])
    _, stable = study.run_optimizer(quad, "GD", 1.9 / 75, 300)
    _, unstable = study.run_optimizer(quad, "GD", 2.1 / 75, 300)
    assert stable[-1] < 1e-2 * stable[0]
    assert len(unstable) < 301 or unstable[-1] > unstable[0]


def test_momentum_beats_gd_on_the_ill_conditioned_quadratic_at_the_same_lr():
    quad = study.PROBLEMS["quadratic"]
    _, gd = study.run_optimizer(quad, "GD", 0.01, 200)
    _, mom = study.run_optimizer(quad, "SGD+momentum", 0.01, 200)
    assert mom[-1] < 1e-3 * gd[-1]


def test_every_tuned_optimizer_makes_progress_on_every_problem():
    results = study.run_study(steps=200, out=None, progress=False)
    for pk, runs in results.items():
        for ok, r in runs.items():
            assert len(r["losses"]) == 201, f"{ok} diverged on {pk} with its tuned lr {r['lr']}"
            assert r["final_loss"] < 0.5 * r["losses"][0], f"{ok} made no progress on {pk}"
