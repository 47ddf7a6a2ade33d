"""TransformerClassifier / MaskedTokenModel / mask_tokens: shapes, padding, the masked-token
loss against a NumPy cross-entropy, a gradient check, a short training run, errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.models import MaskedTokenModel, TransformerClassifier, mask_tokens


def _tokens(rng, n=3, s=6, vocab=20):
    t = rng.integers(3, vocab, size=(n, s))
    t[0, 4:] = 0          # padding at the end of the first row
    return t


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_transformer_classifier_shapes(pooling, rng):
    m = TransformerClassifier(20, 4, d_model=8, nhead=2, num_layers=2, dim_feedforward=16, max_len=10,
                              pooling=pooling)
    t = _tokens(rng)
    assert m(t).shape == (3, 4)
    assert m.encode(t).shape == (3, 6, 8)
    assert m.pool(t).shape == (3, 8)
    assert MaskedTokenModel(m)(t).shape == (3, 6, 20)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_padding_does_not_change_the_prediction(pooling, rng):
    m = TransformerClassifier(20, 4, d_model=8, nhead=2, num_layers=1, dim_feedforward=16, max_len=12,
                              pooling=pooling).double().eval()
    t = rng.integers(3, 20, size=(2, 5))
    padded = np.concatenate([t, np.zeros((2, 4), dtype=t.dtype)], axis=1)
    np.testing.assert_allclose(m(t).numpy(), m(padded).numpy(), rtol=1e-10, atol=1e-12)


def test_mean_pooling_is_the_mean_of_the_non_padding_states(rng):
    m = TransformerClassifier(20, 4, d_model=8, nhead=2, num_layers=1, dim_feedforward=16).double().eval()
    t = _tokens(rng)
    h = m.encode(t).numpy()
    expected = np.stack([h[i][t[i] != 0].mean(axis=0) for i in range(3)])
    np.testing.assert_allclose(m.pool(t).numpy(), expected, rtol=1e-12)


def test_masked_token_loss_is_cross_entropy_on_the_hidden_positions(rng):
    m = MaskedTokenModel(TransformerClassifier(20, 2, d_model=8, nhead=2, num_layers=1, dim_feedforward=16,
                                               dropout=0.0)).double()
    t = _tokens(rng, n=4, s=8)
    inputs, targets = mask_tokens(t, mask_id=1, vocab_size=20, rng=rng, p=0.3)
    logits = m(inputs).numpy()
    keep = targets != -100
    z = logits[keep]
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    expected = -logp[np.arange(len(z)), targets[keep]].mean()
    assert m.loss(inputs, targets).item() == pytest.approx(expected, rel=1e-10)


def test_mask_tokens_follows_bert_proportions():
    rng = np.random.default_rng(0)
    t = rng.integers(4, 100, size=(200, 50))
    t[:, 40:] = 0
    inputs, targets = mask_tokens(t, mask_id=1, vocab_size=100, rng=rng, p=0.15, special_ids=(2, 3))
    picked = targets != -100
    assert not picked[:, 40:].any()                       # padding is never hidden
    assert abs(picked.mean() / 0.8 - 0.15) < 0.01          # 15% of the non-padding positions
    np.testing.assert_array_equal(targets[picked], t[picked])
    np.testing.assert_array_equal(inputs[~picked], t[~picked])
    as_mask = (inputs[picked] == 1).mean()
    kept = (inputs[picked] == t[picked]).mean()
    assert abs(as_mask - 0.8) < 0.03 and 0.08 < kept < 0.14
    assert inputs.min() >= 0 and not np.isin(inputs[picked & (inputs != 1)], [0, 2, 3]).any()


def test_transformer_gradcheck_tiny_instance(rng):
    m = TransformerClassifier(10, 2, d_model=4, nhead=2, num_layers=1, dim_feedforward=6, max_len=5,
                              dropout=0.0).double()
    t = rng.integers(1, 10, size=(2, 4))
    t[1, 3] = 0
    emb = m.token_embedding

    def run(w):
        saved = emb._parameters["weight"]
        emb._parameters["weight"] = w
        try:
            return m(t)
        finally:
            emb._parameters["weight"] = saved

    assert minidl.gradcheck(run, [emb.weight.detach().requires_grad_()])


def test_transformer_learns_a_token_presence_task():
    rng = np.random.default_rng(0)
    t = rng.integers(3, 12, size=(64, 6))
    y = (t == 3).any(axis=1).astype(np.int64)
    minidl.manual_seed(0)
    m = TransformerClassifier(12, 2, d_model=16, nhead=2, num_layers=1, dim_feedforward=32, dropout=0.0)
    opt = minidl.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(60):
        loss = F.cross_entropy(m(t), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (m(t).numpy().argmax(axis=1) == y).mean() > 0.95


def test_transformer_errors(rng):
    m = TransformerClassifier(20, 2, d_model=8, nhead=2, max_len=6)
    with pytest.raises(ValueError, match="sequence length 7"):
        m(rng.integers(1, 20, size=(2, 7)))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 20\)"):
        m(np.array([[1, 25]]))
    with pytest.raises(ValueError, match="integer tokens"):
        m(np.ones((2, 3)))
    with pytest.raises(ValueError, match="pooling"):
        TransformerClassifier(20, 2, pooling="max")
    with pytest.raises(ValueError, match="no position is hidden"):
        MaskedTokenModel(m).loss(np.ones((1, 3), dtype=np.int64), np.full((1, 3), -100))
