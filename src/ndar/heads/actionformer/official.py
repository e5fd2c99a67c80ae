"""Build ndar's ActionFormer from an official actionformer_release configuration and checkpoint.

`from_official(cfg_dict, state_dict)` takes the official model kwargs (`load_config(yaml)["model"]`)
and the official weights, and returns an `ActionFormerNet` whose per-level outputs equal the official
network's for the same weights and inputs. It is the proof that ndar's network is ActionFormer, and a
way to start ndar's training or prediction from a released checkpoint. Loading is strict: a setting
ndar does not implement is a ValueError, and so is any missing, unexpected or mis-shaped tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ndar.heads.actionformer.config import ActionFormerConfig
from ndar.heads.actionformer.model import ActionFormerNet
from ndar.heads.weights import load_strict, strip_prefix

OFFICIAL_STREAM = "feats"  # the single input stream of a network built from an official config

# The official defaults (libs/core/config.py) for keys a hand-written cfg_dict may leave out.
MODEL_DEFAULTS = {
    "backbone_type": "convTransformer",
    "fpn_type": "identity",
    "backbone_arch": (2, 2, 5),
    "scale_factor": 2,
    "regression_range": [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)],
    "n_head": 4,
    "n_mha_win_size": -1,
    "embd_kernel_size": 3,
    "embd_dim": 512,
    "embd_with_ln": True,
    "fpn_dim": 512,
    "fpn_with_ln": True,
    "head_dim": 512,
    "head_kernel_size": 3,
    "head_with_ln": True,
    "head_num_layers": 3,
    "max_buffer_len_factor": 6.0,
    "use_abs_pe": False,
    "use_rel_pe": False,
    "max_seq_len": 2304,
}
TRAIN_DEFAULTS = {
    "center_sample": "radius",
    "center_sample_radius": 1.5,
    "loss_weight": 1.0,
    "cls_prior_prob": 0.01,
    "init_loss_norm": 2000,
    "clip_grad_l2norm": -1,
    "head_empty_cls": [],
    "dropout": 0.1,
    "droppath": 0.1,
    "label_smoothing": 0.0,
}
TEST_DEFAULTS = {
    "pre_nms_thresh": 0.001,
    "pre_nms_topk": 5000,
    "iou_threshold": 0.1,
    "min_score": 0.01,
    "max_seg_num": 1000,
    "nms_method": "soft",
    "nms_sigma": 0.5,
    "duration_thresh": 0.05,
    "multiclass_nms": True,
    "ext_score_file": None,
    "voting_thresh": 0.75,
}
# Settings ndar implements only at one value: key -> the value it must have.
REQUIRED = {
    "backbone_type": "convTransformer",
    "fpn_type": "identity",
    "scale_factor": 2,
    "embd_with_ln": True,
    "fpn_with_ln": True,
    "head_with_ln": True,
    "use_abs_pe": False,
    "use_rel_pe": False,
}
TRAIN_REQUIRED = {"center_sample": "radius", "label_smoothing": 0.0}
TEST_REQUIRED = {"nms_method": "soft", "multiclass_nms": True, "ext_score_file": None}
# Keys with no effect on the network's outputs (buffer sizes; the number of classes comes separately;
# the hard-NMS IoU, score voting and the duration threshold in feature steps are not used by ndar's
# Soft-NMS post-processing, which filters durations in seconds).
IGNORED = {"max_buffer_len_factor", "num_classes", "train_cfg", "test_cfg", "input_dim"}
TEST_IGNORED = {"iou_threshold", "voting_thresh", "duration_thresh"}


def _merged(section: str, given: Mapping | None, defaults: dict) -> dict:
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"actionformer official config: unknown {section} key(s) {unknown}")
    return {**defaults, **given}


def _check_required(section: str, values: dict, required: dict) -> None:
    for key, want in required.items():
        if values[key] != want:
            raise ValueError(
                f"actionformer official config: {section}{key}={values[key]!r} is not implemented "
                f"in ndar (only {want!r})"
            )


def _window(value) -> int:
    """n_mha_win_size: one int, or one per level (ndar supports only one size for all levels)."""
    if isinstance(value, int):
        return value
    sizes = set(value)
    if len(sizes) != 1:
        raise ValueError(
            f"actionformer official config: n_mha_win_size={list(value)} differs between levels; "
            "ndar uses one window for all levels"
        )
    return int(sizes.pop())


def _check_supported(cfg_dict: Mapping, model: dict, train: dict) -> None:
    """Refuse the official options this port does not implement, rather than silently ignore them."""
    if not isinstance(cfg_dict["input_dim"], int):
        raise ValueError(
            f"actionformer official config: input_dim={cfg_dict['input_dim']!r}; ndar supports one int "
            "(features concatenated beforehand), not per-stream projections"
        )
    if model["fpn_dim"] != model["embd_dim"]:
        raise ValueError(
            f"actionformer official config: fpn_dim={model['fpn_dim']} must equal embd_dim="
            f"{model['embd_dim']} with the identity neck"
        )
    if train["loss_weight"] <= 0:
        raise ValueError(
            "actionformer official config: train_cfg.loss_weight <= 0 (auto balancing) is not implemented"
        )


def config_from_official(cfg_dict: Mapping) -> tuple[ActionFormerConfig, int, int, list[int]]:
    """Official model kwargs -> (ndar config, input_dim, num_classes, classes without training data)."""
    known = set(MODEL_DEFAULTS) | IGNORED
    unknown = sorted(set(cfg_dict) - known)
    if unknown:
        raise ValueError(f"actionformer official config: unknown model key(s) {unknown}")
    for key in ("input_dim", "num_classes"):
        if key not in cfg_dict:
            raise ValueError(f"actionformer official config: missing {key!r}")
    model = {**MODEL_DEFAULTS, **{k: v for k, v in cfg_dict.items() if k in MODEL_DEFAULTS}}
    train = _merged("train_cfg", cfg_dict.get("train_cfg"), TRAIN_DEFAULTS)
    test = _merged("test_cfg", cfg_dict.get("test_cfg"), TEST_DEFAULTS)
    _check_required("", model, REQUIRED)
    _check_required("train_cfg.", train, TRAIN_REQUIRED)
    _check_required("test_cfg.", test, TEST_REQUIRED)
    _check_supported(cfg_dict, model, train)
    embed_layers, stem_blocks, branch_blocks = (int(n) for n in model["backbone_arch"])
    cfg = ActionFormerConfig(
        fusion="concat",
        embed_dim=int(model["embd_dim"]),
        embed_kernel=int(model["embd_kernel_size"]),
        embed_layers=embed_layers,
        num_heads=int(model["n_head"]),
        window=_window(model["n_mha_win_size"]),
        mlp_ratio=4.0,
        stem_blocks=stem_blocks,
        levels=branch_blocks + 1,
        dropout=float(train["dropout"]),
        drop_path=float(train["droppath"]),
        head_dim=int(model["head_dim"]),
        head_layers=int(model["head_num_layers"]),
        head_kernel=int(model["head_kernel_size"]),
        prior_prob=float(train["cls_prior_prob"]),
        regression_ranges=[[float(a), float(b)] for a, b in model["regression_range"]],
        center_radius=float(train["center_sample_radius"]),
        reg_weight=float(train["loss_weight"]),
        loss_norm_init=float(train["init_loss_norm"]),
        grad_clip=max(float(train["clip_grad_l2norm"]), 0.0),
        max_seq_len=int(model["max_seq_len"]),
        pre_nms_thresh=float(test["pre_nms_thresh"]),
        pre_nms_topk=int(test["pre_nms_topk"]),
        nms_sigma=float(test["nms_sigma"]),
        nms_min_score=float(test["min_score"]),
        max_segments=int(test["max_seg_num"]),
    )
    if len(cfg.regression_ranges) != cfg.levels:
        raise ValueError(
            f"actionformer official config: {len(cfg.regression_ranges)} regression ranges for "
            f"{cfg.levels} levels (backbone_arch {tuple(model['backbone_arch'])})"
        )
    return cfg, int(cfg_dict["input_dim"]), int(cfg_dict["num_classes"]), list(train["head_empty_cls"])


def official_weights(state_dict: Mapping) -> dict[str, torch.Tensor]:
    """A bare official state_dict, or a released checkpoint: its EMA weights (`state_dict_ema`, as the
    official eval loads them), else `state_dict`; DataParallel's `module.` prefixes removed."""
    for key in ("state_dict_ema", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], Mapping):
            state_dict = state_dict[key]
            break
    return strip_prefix(state_dict)


def from_official(cfg_dict: Mapping, state_dict: Mapping | None = None) -> ActionFormerNet:
    """Official model kwargs (+ optional official weights) -> ndar's ActionFormerNet, in eval mode.

    Call it as `net({"feats": x}, mask)` with x (B, T, input_dim) zero on padding and mask (B, T) bool;
    it returns per level (logits (B, T_l, C), offsets (B, T_l, 2), mask (B, T_l)).
    """
    cfg, input_dim, num_classes, empty_cls = config_from_official(cfg_dict)
    net = ActionFormerNet(cfg, {OFFICIAL_STREAM: input_dim}, num_classes=num_classes)
    if empty_cls:  # official init for classes without training data: a ~1e-6 prior
        with torch.no_grad():
            net.cls_head.cls_head.conv.bias[list(empty_cls)] = -torch.log(torch.tensor((1 - 1e-6) / 1e-6))
    if state_dict is not None:
        load_strict(net, official_weights(state_dict), "actionformer from_official")
    return net.eval()
