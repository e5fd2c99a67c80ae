"""Head checkpoints: byte-stable atomic `torch.save` and a weights-only load that names bad files.

Prediction sources, which heads also write, are a shared format: `ndar.formats.predictions`.
"""

from __future__ import annotations

from pathlib import Path


def save_torch_state(state: dict, path: str | Path) -> Path:
    """`torch.save` a head's state so that the same state gives the same bytes, atomically.

    `torch.save` to a file names the zip's records after the file, so saving through a temporary
    file stored its random name; saving to memory stores the fixed name `archive` instead.
    """
    import io

    import torch

    from ndar.utils.io import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_torch_state(path: str | Path, device) -> dict:
    """`torch.load(weights_only=True)` of a head checkpoint; a file that is not one (corrupt, or a
    pickle with code in it, which weights_only refuses to run) is an error naming the path."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise ValueError(f"{path}: not a loadable head checkpoint (weights only): {reason}") from err
