"""TIM network: shapes, the query attention mask, interval encodings, DRLoc."""

from __future__ import annotations

import pytest
import torch

from ndar.heads.tim.losses import detection_loss, drloc_loss, drloc_pairs, mix, recognition_loss
from ndar.heads.tim.model import IntervalEncoder, TimModel, query_attention_mask

DIMS = {"rear": 6, "dashboard": 5}


def tiny_model(regression: bool = False, seed: int = 0) -> TimModel:
    torch.manual_seed(seed)
    model = TimModel(
        DIMS, 16, d_model=8, num_heads=2, num_layers=2, feedforward_scale=2, regression=regression
    )
    return model.eval()


def inputs(batch: int = 2, feats: int = 7, queries: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = {name: torch.randn(batch, feats, d, generator=g) for name, d in DIMS.items()}
    f_iv = torch.rand(batch, feats, 2, generator=g).sort(-1).values
    q_iv = torch.rand(batch, queries, 2, generator=g).sort(-1).values
    return x, f_iv, q_iv


def run(model, x, f_iv, q_iv, feat_pad=None, query_pad=None):
    with torch.no_grad():
        return model(x, model.encode_intervals(f_iv), model.encode_intervals(q_iv), feat_pad, query_pad)


def test_shapes_and_regression_head():
    model = tiny_model(regression=True)
    x, f_iv, q_iv = inputs()
    out = run(model, x, f_iv, q_iv)
    assert out["logits"].shape == (2, 4, 16)
    assert out["offsets"].shape == (2, 4, 2)
    assert out["feature_tokens"].shape == (2, 2 * 7, 16)  # two streams, width 2 * d_model
    assert "offsets" not in run(tiny_model(), x, f_iv, q_iv)


def test_mask_lets_queries_see_features_and_themselves_only():
    mask = query_attention_mask(3, 2)
    assert not mask[:, :3].any()  # everybody sees the features
    assert mask[:3, 3:].all()  # features never see queries
    assert not mask[3, 3] and not mask[4, 4] and mask[3, 4] and mask[4, 3]


def test_perturbing_one_query_leaves_the_others_unchanged():
    model = tiny_model()
    x, f_iv, q_iv = inputs()
    base = run(model, x, f_iv, q_iv)
    moved = q_iv.clone()
    moved[:, 1] = torch.tensor([0.05, 0.9])
    out = run(model, x, f_iv, moved)
    others = [0, 2, 3]
    torch.testing.assert_close(out["logits"][:, others], base["logits"][:, others], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["feature_tokens"], base["feature_tokens"])
    assert not torch.allclose(out["logits"][:, 1], base["logits"][:, 1])
    # ... whereas changing a feature does reach the queries
    x2 = {k: v.clone() for k, v in x.items()}
    x2["rear"][:, 2] += 3.0
    assert not torch.allclose(run(model, x2, f_iv, q_iv)["logits"], base["logits"])


def test_padding_is_ignored():
    model = tiny_model()
    x, f_iv, q_iv = inputs(batch=1, feats=7, queries=3)
    base = run(model, x, f_iv, q_iv)
    # two padded feature slots and one padded query with garbage content change nothing real
    xp = {k: torch.cat([v, 100 * torch.ones(1, 2, v.shape[-1])], dim=1) for k, v in x.items()}
    f_ivp = torch.cat([f_iv, torch.zeros(1, 2, 2)], dim=1)
    q_ivp = torch.cat([q_iv, torch.tensor([[[0.0, 1.0]]])], dim=1)
    feat_pad = torch.tensor([[False] * 7 + [True] * 2])
    query_pad = torch.tensor([[False, False, False, True]])
    out = run(model, xp, f_ivp, q_ivp, feat_pad, query_pad)
    torch.testing.assert_close(out["logits"][:, :3], base["logits"], atol=1e-5, rtol=1e-5)


def test_missing_stream_and_wrong_shape_are_named():
    model = tiny_model()
    x, f_iv, q_iv = inputs()
    with pytest.raises(ValueError, match="dashboard"):
        run(model, {"rear": x["rear"]}, f_iv, q_iv)
    bad = dict(x, rear=x["rear"][:, :3])
    with pytest.raises(ValueError, match="'rear' has shape"):
        run(model, bad, f_iv, q_iv)


def test_interval_encoder_is_layer_normed_and_order_sensitive():
    torch.manual_seed(0)
    enc = IntervalEncoder(16)
    iv = torch.tensor([[0.1, 0.4], [0.4, 0.1], [0.1, 0.9]])
    out = enc(iv)
    assert out.shape == (3, 16)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3), atol=1e-5, rtol=0)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0], out[2])
    # the same encoder serves features and queries: equal intervals, equal encodings
    torch.testing.assert_close(enc(iv[:1]), out[:1])


def test_drloc_pairs_only_valid_tokens_and_loss_matches_manual():
    valid = torch.tensor([[True, False, True, False], [False, False, False, True]])
    first, second = drloc_pairs(valid, 50, torch.Generator().manual_seed(0))
    assert set(first[0].tolist()) | set(second[0].tolist()) <= {0, 2}
    assert set(first[1].tolist()) == {3} and set(second[1].tolist()) == {3}

    model = tiny_model()
    tokens = torch.randn(2, 4, 16)
    centres = torch.tensor([[0.1, 0.2, 0.7, 0.9], [0.0, 0.5, 0.5, 0.3]])
    loss = drloc_loss(model, tokens, centres, valid, 8, torch.Generator().manual_seed(3))
    a, b = drloc_pairs(valid, 8, torch.Generator().manual_seed(3))
    pick = lambda idx: torch.gather(tokens, 1, idx[..., None].expand(-1, -1, 16))  # noqa: E731
    target = (torch.gather(centres, 1, a) - torch.gather(centres, 1, b)).abs()
    expected = (model.drloc(pick(a), pick(b)) - target).abs().mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.drloc_mlp[0].weight.grad.abs().sum() > 0


def test_losses_ignore_padding_and_mix_is_convex():
    logits = torch.randn(1, 3, 16)
    labels = torch.tensor([[2, 5, -1]])
    valid = torch.tensor([[True, True, False]])
    full = recognition_loss(logits, labels, valid, 0.0)
    torch.testing.assert_close(full, torch.nn.functional.cross_entropy(logits[0, :2], labels[0, :2]))
    target = torch.zeros(1, 3, 16)
    target[0, 0, 4] = 1.0
    target[0, 1, 0] = 1.0  # normal driving: a target, but no activity positive for the normaliser
    offsets, off_t = torch.zeros(1, 3, 2), torch.tensor([[[0.5, -0.5], [0.0, 0.0], [9.0, 9.0]]])
    focal, l1 = detection_loss(
        logits, offsets, target, off_t, torch.tensor([[True, False, False]]), valid, 0.25, 2.0
    )
    assert torch.isclose(l1, torch.tensor(1.0))
    # focal by hand (alpha 0.25, gamma 2): summed over the two valid queries, the padded third left
    # out, and divided by the one activity positive (class-0 rows do not dilute the normaliser)
    p = torch.sigmoid(logits)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    by_hand = ce * (1 - p_t) ** 2 * (0.25 * target + 0.75 * (1 - target))
    torch.testing.assert_close(focal, by_hand[0, :2].sum())
    x = torch.tensor([[0.0], [10.0]])
    torch.testing.assert_close(mix(x, 0.7, torch.tensor([1, 0])), torch.tensor([[3.0], [7.0]]))
