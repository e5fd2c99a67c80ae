"""`ndar.heads.tim.from_official` builds TIM from the official constructor kwargs and weights; its
logits equal an independent functional forward written here from the raw tensors of the official
state_dict (recognition TIM: time MLP, AudioVisualFeatureEncoding with visual queries, post-norm
encoder layers, VisualCLSHead)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ndar.heads.tim import from_official

V_DIM, A_DIM, D, HEADS, LAYERS, CLASSES = 10, 6, 8, 2, 2, 5


def official_cfg(**change) -> dict:
    cfg = {
        "num_class": [CLASSES, 3],
        "visual_input_dim": V_DIM,
        "audio_input_dim": A_DIM,
        "feat_drop": 0.5,
        "seq_drop": 0.5,
        "d_model": D,
        "feedforward_scale": 2,
        "nhead": HEADS,
        "num_layers": LAYERS,
        "enc_dropout": 0.1,
        "input_modality": "audio_visual",
        "data_modality": "visual",
        "num_feats": 6,
        "include_verb_noun": False,
        "pool_features": False,
    }
    cfg.update(change)
    return cfg


def official_layout() -> dict[str, tuple[int, ...]]:
    """Tensor shapes of the official TIM state_dict for official_cfg()."""
    w, ff = 2 * D, 2 * D
    shapes = {
        "time_mlp.0.weight": (D, 2), "time_mlp.0.bias": (D,),
        "time_mlp.2.weight": (D, D), "time_mlp.2.bias": (D,),
        "time_mlp.4.weight": (D, D), "time_mlp.4.bias": (D,),
        "time_mlp.6.weight": (D,), "time_mlp.6.bias": (D,),
        "feature_encoding.visual_embedder.1.weight": (D, V_DIM), "feature_encoding.visual_embedder.1.bias": (D,),
        "feature_encoding.visual_embedder.3.weight": (D,), "feature_encoding.visual_embedder.3.bias": (D,),
        "feature_encoding.audio_embedder.1.weight": (D, A_DIM), "feature_encoding.audio_embedder.1.bias": (D,),
        "feature_encoding.audio_embedder.3.weight": (D,), "feature_encoding.audio_embedder.3.bias": (D,),
        "feature_encoding.visual_modality_encoding": (1, 1, w),
        "feature_encoding.audio_modality_encoding": (1, 1, w),
        "feature_encoding.visual_action_cls": (1, 1, D),
        "cls_head.fc_visual_action.weight": (CLASSES, w), "cls_head.fc_visual_action.bias": (CLASSES,),
        "drloc_mlp.0.weight": (D, 2 * w), "drloc_mlp.0.bias": (D,),
        "drloc_mlp.2.weight": (D, D), "drloc_mlp.2.bias": (D,),
        "drloc_mlp.4.weight": (1, D), "drloc_mlp.4.bias": (1,),
    }  # fmt: skip
    for i in range(LAYERS):
        p = f"transformer_encoder.layers.{i}."
        shapes.update({
            p + "self_attn.in_proj_weight": (3 * w, w), p + "self_attn.in_proj_bias": (3 * w,),
            p + "self_attn.out_proj.weight": (w, w), p + "self_attn.out_proj.bias": (w,),
            p + "linear1.weight": (ff, w), p + "linear1.bias": (ff,),
            p + "linear2.weight": (w, ff), p + "linear2.bias": (w,),
            p + "norm1.weight": (w,), p + "norm1.bias": (w,),
            p + "norm2.weight": (w,), p + "norm2.bias": (w,),
        })  # fmt: skip
    return shapes


def random_weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.5 for k, s in official_layout().items()}


# ------------------------------------------------------------------- functional reference forward


def layer_norm(w, p, x):
    return F.layer_norm(x, x.shape[-1:], w[p + ".weight"], w[p + ".bias"], 1e-5)


def time_mlp(w, iv):
    x = iv
    for i in (0, 2, 4):
        x = F.relu(F.linear(x, w[f"time_mlp.{i}.weight"], w[f"time_mlp.{i}.bias"]))
    return layer_norm(w, "time_mlp.6", x)


def embed(w, p, x):
    return layer_norm(w, p + ".3", F.gelu(F.linear(x, w[p + ".1.weight"], w[p + ".1.bias"])))


def encoder_layer(w, p, x, blocked):
    """Post-norm layer on (B, S, W); blocked (S, S) True = may not attend."""
    b, s, width = x.shape
    hd = width // HEADS
    qkv = F.linear(x, w[p + "self_attn.in_proj_weight"], w[p + "self_attn.in_proj_bias"])
    q, k, v = (t.reshape(b, s, HEADS, hd).transpose(1, 2) for t in qkv.split(width, dim=-1))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    att = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1) @ v
    att = F.linear(
        att.transpose(1, 2).reshape(b, s, width),
        w[p + "self_attn.out_proj.weight"],
        w[p + "self_attn.out_proj.bias"],
    )
    x = layer_norm(w, p + "norm1", x + att)
    ff = F.linear(
        F.gelu(F.linear(x, w[p + "linear1.weight"], w[p + "linear1.bias"])),
        w[p + "linear2.weight"],
        w[p + "linear2.bias"],
    )
    return layer_norm(w, p + "norm2", x + ff)


def reference_logits(w, visual, audio, v_iv, a_iv, q_iv):
    b, t, _ = visual.shape
    nq = q_iv.shape[1]
    v_tok = torch.cat([embed(w, "feature_encoding.visual_embedder", visual), time_mlp(w, v_iv)], -1)
    a_tok = torch.cat([embed(w, "feature_encoding.audio_embedder", audio), time_mlp(w, a_iv)], -1)
    v_tok = v_tok + w["feature_encoding.visual_modality_encoding"]
    a_tok = a_tok + w["feature_encoding.audio_modality_encoding"]
    cls = w["feature_encoding.visual_action_cls"].expand(b, nq, -1)
    q_tok = torch.cat([cls, time_mlp(w, q_iv)], -1) + w["feature_encoding.visual_modality_encoding"]
    x = torch.cat([v_tok, a_tok, q_tok], 1)
    s = x.shape[1]
    blocked = torch.ones(s, s, dtype=torch.bool)
    blocked[:, : 2 * t] = False
    blocked.fill_diagonal_(False)
    for i in range(LAYERS):
        x = encoder_layer(w, f"transformer_encoder.layers.{i}.", x, blocked)
    return F.linear(x[:, -nq:], w["cls_head.fc_visual_action.weight"], w["cls_head.fc_visual_action.bias"])


def intervals(g, b, n):
    return torch.rand(b, n, 2, generator=g).sort(-1).values


# -------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("batch", "feats", "queries"), [(1, 6, 1), (2, 6, 4), (3, 9, 7)])
def test_logits_equal_the_official_forward(batch, feats, queries):
    weights = random_weights(seed=batch)
    model = from_official(official_cfg(), weights)
    g = torch.Generator().manual_seed(feats + queries)
    visual, audio = (
        torch.randn(batch, feats, V_DIM, generator=g),
        torch.randn(batch, feats, A_DIM, generator=g),
    )
    f_iv, q_iv = intervals(g, batch, feats), intervals(g, batch, queries)
    with torch.no_grad():
        got = model(
            {"visual": visual, "audio": audio}, model.encode_intervals(f_iv), model.encode_intervals(q_iv)
        )
        want = reference_logits(weights, visual, audio, f_iv, f_iv, q_iv)
        # the official model times its two streams separately; so can ndar's
        a_iv = intervals(g, batch, feats)
        per_stream = {"visual": model.encode_intervals(f_iv), "audio": model.encode_intervals(a_iv)}
        got2 = model({"visual": visual, "audio": audio}, per_stream, model.encode_intervals(q_iv))
        want2 = reference_logits(weights, visual, audio, f_iv, a_iv, q_iv)
    assert got["logits"].shape == (batch, queries, CLASSES)
    torch.testing.assert_close(got["logits"], want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got2["logits"], want2, atol=1e-4, rtol=1e-4)


def test_checkpoint_wrapper_and_prefix_load():
    weights = random_weights(seed=7)
    model = from_official(official_cfg(), {"state_dict": {"module." + k: v for k, v in weights.items()}})
    torch.testing.assert_close(model.query_token, weights["feature_encoding.visual_action_cls"].reshape(-1))
    assert not model.training


def test_loading_is_strict():
    weights = random_weights(seed=0)
    with pytest.raises(ValueError, match=r"missing \['cls_head.bias'\]"):
        from_official(
            official_cfg(), {k: v for k, v in weights.items() if k != "cls_head.fc_visual_action.bias"}
        )
    with pytest.raises(ValueError, match=r"unexpected \['pool.fc.weight'\]"):
        from_official(official_cfg(), dict(weights, **{"pool.fc.weight": torch.zeros(2, 2)}))
    with pytest.raises(ValueError, match="mis-shaped.*cls_head.weight"):
        from_official(official_cfg(num_class=[CLASSES + 1, 3]), weights)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"include_verb_noun": True}, "include_verb_noun"),
        ({"data_modality": "audio_visual"}, "data_modality"),
        ({"input_modality": "visual"}, "input_modality"),
        ({"pool_features": True}, "pool_features"),
        ({"num_class": [[97, 300, 3806], 44]}, "verb/noun"),
        ({"feature_dim": 3}, "unknown key"),
    ],
)
def test_unimplemented_settings_are_value_errors(change, message):
    with pytest.raises(ValueError, match=message):
        from_official(official_cfg(**change))
