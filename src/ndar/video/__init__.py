"""Video decoding for feature extraction: probe, one in-order streaming decode, rolling windows.

Windows are cut from a bounded ring buffer while frames arrive, so each frame is decoded exactly
once however much windows overlap, and memory does not grow with the video's length.
"""

from ndar.video.mean import native_mean_frame, resize_mean, subtract_mean, video_mean_frame
from ndar.video.probe import VideoError, VideoInfo, probe
from ndar.video.reader import DecodedFrame, iter_frames
from ndar.video.windows import Window, WindowCutter, WindowSpec, window_starts

__all__ = [
    "DecodedFrame",
    "VideoError",
    "VideoInfo",
    "Window",
    "WindowCutter",
    "WindowSpec",
    "iter_frames",
    "native_mean_frame",
    "probe",
    "resize_mean",
    "subtract_mean",
    "video_mean_frame",
    "window_starts",
]
