import numpy as np
import pytest
import torch
from heads_fixtures import make_videos

from ndar.formats.predictions import segments_frame
from ndar.heads.actionformer import ActionFormerConfig, ActionFormerHead
from ndar.heads.actionformer.head import crop_length, random_crop
from ndar.heads.actionformer.model import ActionFormerNet, ConvAttention, local_attention_mask
from ndar.heads.actionformer.targets import assign_targets, diou_loss_1d, pyramid_points
from ndar.heads.base import get_head
from ndar.heads.config import HeadsConfig
from ndar.heads.runner import score_predictions

DIMS = {"rear": 8, "dashboard": 8}


def tiny(**kw) -> ActionFormerConfig:
    base = dict(embed_dim=16, num_heads=2, window=5, head_dim=16, head_layers=2, epochs=2, warmup_epochs=1)
    base.update(dict(batch_size=2, lr=3e-3, drop_path=0.0, device="cpu", cpu_threads=1, pre_nms_topk=100))
    base.update(kw)
    return ActionFormerConfig(**base)


def chance_scores(videos) -> dict:
    """Scores of a guesser that knows the classes and typical lengths but not where: one random
    segment of the right length per ground-truth class, uniform in time (averaged over 5 draws)."""
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(5):
        rows = {}
        for v in videos:
            rows[v.key] = []
            for seg in v.segments:
                start = rng.uniform(0, v.duration - seg.duration)
                rows[v.key].append((seg.label, start, start + seg.duration, rng.random()))
        curves = {v.key: np.zeros((v.num_seconds, 16), dtype=np.float32) for v in videos}
        draws.append(score_predictions(HeadsConfig(), videos, curves, segments_frame(rows)))
    return {k: float(np.mean([d[k] for d in draws])) for k in ("mAP", "mOS_segments")}


def test_registered_under_its_name():
    entry = get_head("actionformer")
    assert entry.head_cls is ActionFormerHead and entry.config_cls is ActionFormerConfig


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_pyramid_shapes_and_padding_content_never_leaks(fusion):
    torch.manual_seed(0)
    net = ActionFormerNet(tiny(fusion=fusion), DIMS).eval()
    x = {s: torch.randn(2, 64, d) for s, d in DIMS.items()}
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, 40:] = False
    out = net(x, mask)
    assert [o[0].shape for o in out] == [(2, 64 // 2**lv, 15) for lv in range(6)]
    assert [o[1].shape for o in out] == [(2, 64 // 2**lv, 2) for lv in range(6)]
    assert out[1][2][1].tolist() == [True] * 20 + [False] * 12  # level-1 mask
    noisy = {s: v.clone() for s, v in x.items()}
    for v in noisy.values():
        v[1, 40:] = 100.0  # garbage in the padding is zeroed: the amount of padding matters
        # (tests/heads/test_actionformer_official.py), its content does not
    out2 = net(noisy, mask)
    for (lg, off, m), (lg2, off2, _) in zip(out, out2):
        torch.testing.assert_close(lg[1][m[1]], lg2[1][m[1]])
        torch.testing.assert_close(off[1][m[1]], off2[1][m[1]])
        assert torch.all(off2[1][~m[1]] == 0) and torch.all(lg2[1][~m[1]] == 0)
    with pytest.raises(ValueError, match="multiple of the largest stride 32"):
        net(x, torch.ones(2, 50, dtype=torch.bool))


def test_layer_scale_comes_with_drop_path():
    with_dp = ActionFormerNet(tiny(drop_path=0.1), DIMS).state_dict()
    scale = with_dp["backbone.stem.0.drop_path_attn.scale"]
    assert scale.shape == (1, 16, 1) and torch.all(scale == 1e-4)
    assert not any("drop_path" in k for k in ActionFormerNet(tiny(drop_path=0.0), DIMS).state_dict())


def test_only_linear_and_conv_weights_decay():
    from ndar.heads.actionformer.head import weight_decay_groups

    net = ActionFormerNet(tiny(drop_path=0.1, fusion="sum"), DIMS)
    decay, no_decay = weight_decay_groups(net, 0.05)
    names = {id(p): n for n, p in net.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "backbone.stem.0.attn.query_conv.conv.weight" in decayed and "fusion.proj.rear.weight" in decayed
    assert not any(n.endswith((".bias", "norm.weight", ".scale")) or "norm." in n for n in decayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)


def test_random_crop_follows_the_official_ratio():
    rng = np.random.default_rng(0)
    cfg = tiny(crop_ratio=[0.9, 1.0], crop_keep=0.3)
    lengths = [crop_length(100, cfg, rng) for _ in range(300)]
    assert min(lengths) == 90 and max(lengths) == 100  # both ends reachable
    assert crop_length(5000, tiny(max_seq_len=2304), rng) == 2304
    assert crop_length(100, tiny(crop_ratio=[]), rng) == 100
    gt, labels = np.array([[10.0, 20.0], [95.0, 99.0]]), np.array([1, 2])
    for _ in range(50):
        start, stop, kept, kept_labels = random_crop(100, gt, labels, cfg, rng)
        assert 90 <= stop - start <= 100 and len(kept) == len(kept_labels) >= 1
        assert np.all(kept >= 0) and np.all(kept <= stop - start)


def test_local_attention_mask_pattern():
    mask = torch.tensor([[True, True, True, True, False]])
    allowed = local_attention_mask(mask, window=3)[0, 0]
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 0, 1, 1],  # a padded query keeps itself (no empty softmax)
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)


def test_local_attention_ignores_keys_outside_the_window():
    torch.manual_seed(0)
    attn = ConvAttention(8, 2, window=5, stride=1, proj_dropout=0.0).eval()
    x = torch.randn(1, 8, 20)
    mask = torch.ones(1, 20, dtype=torch.bool)
    changed = x.clone()
    changed[0, :, 10] += 5.0
    a, b = attn(x, mask)[0], attn(changed, mask)[0]
    diff = (a - b).abs().sum(1)[0]
    # the 3-tap q/k/v conv widens the reach by one step: |i - 10| <= 2 + 1
    assert torch.all(diff[[0, 6, 14, 19]] == 0)
    assert torch.all(diff[7:14] > 0)


def test_assign_targets_hand_worked():
    points = pyramid_points(32, 6, ActionFormerConfig().regression_ranges)
    cls, reg, pos = assign_targets(points, torch.tensor([[10.0, 20.0]]), torch.tensor([3]), 15, radius=1.5)
    stride, where = points["stride"][pos], points["pos"][pos]
    # length 10: level 1 (range 4..8) at steps 14, 16 (centre region 12..18, strict); level 2 (8..16) at 12
    assert list(zip(stride.tolist(), where.tolist())) == [(2.0, 14.0), (2.0, 16.0), (4.0, 12.0)]
    torch.testing.assert_close(reg[pos], torch.tensor([[2.0, 3.0], [3.0, 2.0], [0.5, 2.0]]))
    assert torch.all(cls[pos].argmax(1) == 3) and cls[~pos].sum() == 0


def test_assign_targets_prefers_shortest_action():
    points = pyramid_points(64, 6, [[0, 1000]] * 6)
    gt = torch.tensor([[0.0, 40.0], [18.0, 22.0]])
    cls, _, pos = assign_targets(points, gt, torch.tensor([0, 5]), 15, radius=1.5)
    at_20 = (points["pos"] == 20) & (points["stride"] == 1)
    assert pos[at_20].item() and cls[at_20].argmax().item() == 5


def test_diou_loss_1d_hand_worked():
    pred = torch.tensor([[1.0, 1.0], [0.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[2.0, 2.0], [1.0, 1.0], [3.0, 4.0]])
    # 1) same centre, IoU 2/4 -> 0.5; 2) IoU 1/3, centre gap 1, enclosing 3 -> 1 - 1/3 + 1/9; 3) identical
    torch.testing.assert_close(diou_loss_1d(pred, target), torch.tensor([0.5, 7 / 9, 0.0]))


@pytest.mark.slow
def test_tiny_actionformer_learns_and_is_deterministic(tmp_path):
    videos = make_videos(n_drivers=6, sessions=2, seed=0)
    train, held = videos[:8], videos[8:]
    cfg = tiny(epochs=10, batch_size=2, lr=5e-3, eval_every=4)
    head = ActionFormerHead(cfg, DIMS, seed=0)
    history = head.fit(train, held, tmp_path / "a")["epochs"]
    assert len(history) == 10 and history[-1]["loss"] < history[0]["loss"]
    assert "val_loss" in history[3] and "val_loss" not in history[0]
    assert (tmp_path / "a" / "metrics.csv").is_file()
    out = head.predict(held)
    curves = {k: o.curve for k, o in out.items()}
    assert all(c.shape == (120, 16) for c in curves.values())
    metrics = score_predictions(
        HeadsConfig(), held, curves, segments_frame({k: o.segments for k, o in out.items()})
    )
    chance = chance_scores(held)
    assert metrics["mAP"] > chance["mAP"] + 0.4, (metrics, chance)
    assert metrics["mOS_segments"] > chance["mOS_segments"] + 0.2, (metrics, chance)

    head.save(tmp_path / "model.pt")
    loaded = ActionFormerHead(cfg, DIMS, seed=5)
    loaded.load(tmp_path / "model.pt")
    again = loaded.predict(held[:1])[held[0].key]
    np.testing.assert_array_equal(again.curve, out[held[0].key].curve)
    assert again.segments == out[held[0].key].segments


@pytest.mark.slow
def test_same_seed_same_model_and_resume_is_exact(tmp_path):
    videos = make_videos(n_drivers=3, sessions=1, duration=60.0, seed=2)
    full = ActionFormerHead(tiny(epochs=3), DIMS, seed=1)
    full.fit(videos, [], tmp_path / "full")

    interrupted = ActionFormerHead(tiny(epochs=3), DIMS, seed=1)
    save = interrupted._checkpoint

    def save_then_stop(path, optimizer, epoch, history):
        save(path, optimizer, epoch, history)
        if epoch == 1:
            raise KeyboardInterrupt  # the run dies after epoch 1 was checkpointed

    interrupted._checkpoint = save_then_stop
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(videos, [], tmp_path / "resumed")
    resumed = ActionFormerHead(tiny(epochs=3), DIMS, seed=1)
    history = resumed.fit(videos, [], tmp_path / "resumed")["epochs"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    a = full.predict(videos[:1])[videos[0].key]
    b = resumed.predict(videos[:1])[videos[0].key]
    np.testing.assert_array_equal(a.curve, b.curve)
    assert a.segments == b.segments


def test_segments_to_curve_keeps_best_score_per_second():
    from ndar.heads.actionformer.head import segments_to_curve

    segs = np.array([[0.5, 2.2], [1.0, 3.0], [4.0, 9.0]])
    curve = segments_to_curve(segs, np.array([0.6, 0.3, 0.9]), np.array([2, 2, 5]), num_sec=6)
    assert curve.shape == (6, 16)
    np.testing.assert_allclose(curve[:, 2], [0.6, 0.6, 0.6, 0.0, 0.0, 0.0])  # 0.3 never beats 0.6
    np.testing.assert_allclose(curve[:, 5], [0, 0, 0, 0, 0.9, 0.9])  # clipped to the 6 seconds
    np.testing.assert_allclose(curve[:, 0], [0.4, 0.4, 0.4, 1.0, 0.1, 0.1], rtol=1e-6)
