"""Build ndar's TIM network from the official TIM constructor arguments and checkpoint.

`from_official(cfg_dict, state_dict)` takes the kwargs of the official recognition `TIM(...)`
(JacobChalk/TIM) for the two-stream, visual-query model ndar trains (input_modality "audio_visual",
data_modality "visual", no verb/noun queries, no feature pooling) and returns a `TimModel` whose
logits equal the official ones for the same weights and inputs. The official "visual" stream is
ndar's first stream (queries belong to it), "audio" the second. Loading is strict: a setting ndar
does not implement is a ValueError, and so is any missing, unexpected or mis-shaped tensor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ndar.heads.tim.model import TimModel
from ndar.heads.weights import load_strict, strip_prefix

# The official constructor's defaults (recognition/time_interval_machine/models/tim.py).
DEFAULTS = {
    "visual_input_dim": 1024,
    "audio_input_dim": 2304,
    "feat_drop": 0.5,
    "seq_drop": 0.5,
    "d_model": 512,
    "feedforward_scale": 4,
    "nhead": 8,
    "num_layers": 6,
    "enc_dropout": 0.1,
    "input_modality": "audio_visual",
    "data_modality": "audio_visual",
    "num_feats": 50,
    "include_verb_noun": True,
    "pool_features": False,
}
REQUIRED = {
    "input_modality": "audio_visual",
    "data_modality": "visual",
    "include_verb_noun": False,
    "pool_features": False,
}
STREAMS = ("visual", "audio")  # official order: visual tokens, audio tokens, then the visual queries

# official key -> ndar key (regular expressions, applied in order; the modality encodings are merged)
RENAMES = [
    (r"^time_mlp\.", "interval_encoder.mlp."),
    (r"^feature_encoding\.visual_embedder\.", "projections.visual."),
    (r"^feature_encoding\.audio_embedder\.", "projections.audio."),
    (r"^transformer_encoder\.layers\.", "encoder.layers."),
    (r"^cls_head\.fc_visual_action\.", "cls_head."),
    (r"^drloc_mlp\.", "drloc_mlp."),
]
MODALITY_KEYS = ("feature_encoding.visual_modality_encoding", "feature_encoding.audio_modality_encoding")
QUERY_KEY = "feature_encoding.visual_action_cls"


def _num_classes(value) -> int:
    """Official num_class: [visual, audio] (the visual entry is used with data_modality "visual")."""
    visual = value[0] if isinstance(value, (list, tuple)) else value
    if not isinstance(visual, int):
        raise ValueError(
            f"tim official config: num_class={value!r}; verb/noun class lists are not implemented"
        )
    return visual


def from_official_config(cfg_dict: Mapping) -> TimModel:
    unknown = sorted(set(cfg_dict) - set(DEFAULTS) - {"num_class"})
    if unknown:
        raise ValueError(f"tim official config: unknown key(s) {unknown}")
    if "num_class" not in cfg_dict:
        raise ValueError("tim official config: missing 'num_class'")
    cfg = {**DEFAULTS, **cfg_dict}
    for key, want in REQUIRED.items():
        if cfg[key] != want:
            raise ValueError(
                f"tim official config: {key}={cfg[key]!r} is not implemented in ndar (only {want!r})"
            )
    return TimModel(
        {"visual": int(cfg["visual_input_dim"]), "audio": int(cfg["audio_input_dim"])},
        _num_classes(cfg["num_class"]),
        d_model=int(cfg["d_model"]),
        num_heads=int(cfg["nhead"]),
        num_layers=int(cfg["num_layers"]),
        feedforward_scale=int(cfg["feedforward_scale"]),
        dropout=float(cfg["enc_dropout"]),
        feat_dropout=float(cfg["feat_drop"]),
        seq_dropout=float(cfg["seq_drop"]),
    )


def convert_official_weights(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """Official TIM state_dict (bare, or {"state_dict": ...}; `module.` prefixes allowed) -> ndar's
    names. Keys that have no ndar counterpart are kept under their official name, so that the strict
    load reports them as unexpected."""
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    weights = strip_prefix(state_dict)
    out: dict[str, torch.Tensor] = {}
    if all(k in weights for k in MODALITY_KEYS):  # (1, 1, 2d) each -> (2, 2d)
        out["modality"] = torch.cat([weights.pop(k).reshape(1, -1) for k in MODALITY_KEYS])
    if QUERY_KEY in weights:
        out["query_token"] = weights.pop(QUERY_KEY).reshape(-1)
    for key, value in weights.items():
        new = key
        for pattern, repl in RENAMES:
            if re.match(pattern, key):
                new = re.sub(pattern, repl, key)
                break
        out[new] = value
    return out


def from_official(cfg_dict: Mapping, state_dict: Mapping | None = None) -> TimModel:
    """Official TIM kwargs (+ optional official weights) -> ndar's TimModel, in eval mode.

    Call it as `m({"visual": v, "audio": a}, feat_time, query_time)["logits"]` -> (B, Q, C), with
    the time encodings from `m.encode_intervals(intervals)` (feat_time may be one tensor for both
    streams or a dict per stream).
    """
    model = from_official_config(cfg_dict)
    if state_dict is not None:
        load_strict(model, convert_official_weights(state_dict), "tim from_official")
    return model.eval()
