"""The karate-club experiment: the data, the Adamic-Adar reference, and a short run of main."""
import numpy as np
import pytest

from minidl.graph.experiments import adamic_adar_auc, karate_club, main, run_karate
from minidl.graph.gcn import split_edges

nx = pytest.importorskip("networkx")


def test_karate_club_has_78_edges_and_two_factions_of_17():
    adj, labels = karate_club()
    assert adj.shape == (34, 34) and adj.sum() == 2 * 78 and np.array_equal(adj, adj.T)
    assert np.bincount(labels).tolist() == [17, 17] and labels[0] == 0 and labels[33] == 1


def test_adamic_adar_auc_matches_networkx():
    from sklearn.metrics import roc_auc_score

    adj, _ = karate_club()
    s = split_edges(adj, seed=3)
    pairs = [tuple(map(int, p)) for p in np.concatenate([s["test_pos"], s["test_neg"]])]
    scores = [p for _, _, p in nx.adamic_adar_index(nx.from_numpy_array(s["train_adj"]), pairs)]
    labels = np.r_[np.ones(len(s["test_pos"])), np.zeros(len(s["test_neg"]))]
    assert adamic_adar_auc(s["train_adj"], s["test_pos"], s["test_neg"]) == pytest.approx(roc_auc_score(labels, scores))


def test_run_karate_reports_every_method_and_main_runs(capsys):
    rows = run_karate([0], epochs=5, progress=False)
    for name in ("graph autoencoder (trained)", "Adamic-Adar index / spectral embedding"):
        assert all(0.0 <= v[0] <= 1.0 for v in rows[name].values())
    assert main(["--seeds", "1", "--epochs", "3", "--no-write", "--quiet"]) == 0
    assert "test AUC" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--seeds", "0"])
