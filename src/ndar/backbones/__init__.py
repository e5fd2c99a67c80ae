"""Backbones (VideoMAE ViTs, VideoMamba): registry with preprocessing, checkpoint loading, model folders."""

from ndar.backbones.checkpoint import CheckpointError, LoadReport, load_checkpoint, load_state_dict_into
from ndar.backbones.factory import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSpec,
    create_backbone,
    get_spec,
    list_backbones,
)
from ndar.backbones.folder import load_model_folder, read_model_meta, save_model_folder
from ndar.backbones.scan import selective_scan
from ndar.backbones.videomamba import MambaArgs, VideoMamba
from ndar.backbones.vit import VideoMAEViT, ViTArgs, sinusoid_table

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneSpec",
    "CheckpointError",
    "LoadReport",
    "MambaArgs",
    "VideoMAEViT",
    "ViTArgs",
    "VideoMamba",
    "create_backbone",
    "get_spec",
    "list_backbones",
    "load_checkpoint",
    "load_model_folder",
    "load_state_dict_into",
    "read_model_meta",
    "save_model_folder",
    "selective_scan",
    "sinusoid_table",
]
