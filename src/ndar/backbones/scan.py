"""The selective scan of Mamba: the `mamba-ssm` CUDA kernel when installed, a pure-PyTorch scan elsewhere.

The operation (Mamba, S6; the official `selective_scan_ref` semantics), per batch b, channel d, state n:
    delta = softplus(delta + delta_bias)                       (when asked)
    h[t]  = exp(delta[t] * A[d, n]) * h[t-1] + delta[t] * B[n, t] * u[t]     (h[-1] = 0)
    y[t]  = sum_n C[n, t] * h[t, n] + D[d] * u[t],   then   y * silu(z)     (when z is given)

Two pure-PyTorch paths, chosen by measurement (bench/results/backbones.md, one CPU thread, one
direction of a videomamba_tiny block at 16 frames: B 1, D 384, L 3137, N 16):
- `chunked` (training): a log-depth (Hillis-Steele) scan inside chunks of `chunk` tokens, the state
  carried from chunk to chunk: about log2(chunk) full-size ops and autograd nodes per chunk, only
  multiplications by decays <= 1 (no exp(-cumsum) trick that overflows), memory bounded by a chunk.
  Forward + backward 0.94 CPU s vs 1.15 s for `stepwise`.
- `stepwise` (inference): decays and drives for a chunk at once, then one in-place multiply-add per
  token: the least arithmetic. Forward 0.155 s vs 0.233 s for `chunked` (a plain token loop: 0.158 s).
`mambapy`'s Blelloch scan (pads to a power of two, two sweeps) took 0.73 s: not adopted.

The CUDA kernel (`pip install mamba-ssm`, optional, GPU machines only) computes the same function;
`impl="auto"` uses it for CUDA tensors when it imports, the PyTorch paths otherwise.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SCAN_IMPLS = ("auto", "chunked", "stepwise", "cuda")
DEFAULT_CHUNK = {"chunked": 32, "stepwise": 64}  # tokens per chunk, measured (bench/results/backbones.md)


@functools.cache
def cuda_scan_fn():
    """`mamba_ssm`'s `selective_scan_fn`, or None when the package (or its compiled kernel) is absent."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as err:  # ImportError, or the compiled extension failing to load
        log.debug("mamba-ssm CUDA selective scan unavailable: %s", err)
        return None
    return selective_scan_fn


def resolve_impl(impl: str, device: torch.device, needs_grad: bool) -> str:
    """'auto': the CUDA kernel for CUDA tensors when mamba-ssm imports; else the log-depth chunked
    scan when gradients are needed (cheaper forward + backward, few autograd nodes) and the stepwise
    scan for inference (a third less CPU time). 'cuda' must be usable: never a silent fallback."""
    if impl not in SCAN_IMPLS:
        raise ValueError(f"scan_impl {impl!r} is not one of {list(SCAN_IMPLS)}")
    if impl == "auto":
        if device.type == "cuda" and cuda_scan_fn() is not None:
            return "cuda"
        return "chunked" if needs_grad else "stepwise"
    if impl == "cuda" and (device.type != "cuda" or cuda_scan_fn() is None):
        raise RuntimeError(
            "scan_impl 'cuda' needs CUDA tensors and the mamba-ssm package (pip install mamba-ssm, "
            f"a GPU build); tensors are on {device}, mamba-ssm importable: {cuda_scan_fn() is not None}"
        )
    return impl


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    impl: str = "auto",
    chunk: int = 0,
) -> torch.Tensor:
    """Selective scan. u, delta, z: (B, D, L); A: (D, N); B, C: (B, N, L); D, delta_bias: (D,).

    Returns y (B, D, L) in u's dtype; everything inside runs in float32, like the reference.
    chunk: tokens per chunk of the PyTorch paths (0 = the measured default of the path).
    """
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    which = resolve_impl(impl, u.device, needs_grad)
    if which == "cuda":
        return cuda_scan_fn()(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
    scan = chunked_selective_scan if which == "chunked" else stepwise_selective_scan
    return scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk or DEFAULT_CHUNK[which])


def chunked_selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk: int = DEFAULT_CHUNK["chunked"],
) -> torch.Tensor:
    """Pure-PyTorch selective scan (differentiable by autograd); see the module docstring."""
    dtype_in = u.dtype
    u, delta, A, Bt, Ct = _scan_inputs(u, delta, A, B, C, delta_bias, delta_softplus)
    length = u.shape[-1]
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (B, D, N)
    ys = []
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        dt = delta[:, :, start:stop, None]  # (B, D, K, 1)
        decay = torch.exp(dt * A[None, :, None, :])  # (B, D, K, N)
        drive = dt * u[:, :, start:stop, None] * Bt[:, :, start:stop]  # (B, D, K, N)
        local, cumdecay = _log_depth_scan(decay, drive)  # (B, D, K, N) each
        h = local + cumdecay * state[:, :, None]  # (B, D, K, N)
        ys.append((h * Ct[:, :, start:stop]).sum(-1))  # (B, D, K)
        state = h[:, :, -1]
    return _scan_output(torch.cat(ys, dim=-1), u, D, z).to(dtype_in)  # (B, D, L)


def stepwise_selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk: int = DEFAULT_CHUNK["stepwise"],
) -> torch.Tensor:
    """The recurrence token by token, one fused multiply-add per token: decays and drives are
    computed for a chunk of tokens at once, so the loop itself is a single op per token."""
    dtype_in = u.dtype
    u, delta, A, Bt, Ct = _scan_inputs(u, delta, A, B, C, delta_bias, delta_softplus)
    length = u.shape[-1]
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])  # (B, D, N)
    track_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C))
    ys = []
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        dt = delta[:, :, start:stop, None]  # (B, D, K, 1)
        decay = torch.exp(dt * A[None, :, None, :])  # (B, D, K, N)
        drive = dt * u[:, :, start:stop, None] * Bt[:, :, start:stop]  # (B, D, K, N)
        if track_grad:
            states = []
            for t in range(stop - start):
                state = torch.addcmul(drive[:, :, t], decay[:, :, t], state)
                states.append(state)
            h = torch.stack(states, dim=2)  # (B, D, K, N)
        else:
            h = drive  # overwritten token by token: h[t] = drive[t] + decay[t] * h[t-1]
            h[:, :, 0].addcmul_(decay[:, :, 0], state)
            for t in range(1, stop - start):
                h[:, :, t].addcmul_(decay[:, :, t], h[:, :, t - 1])
            state = h[:, :, -1]
        ys.append((h * Ct[:, :, start:stop]).sum(-1))  # (B, D, K)
    return _scan_output(torch.cat(ys, dim=-1), u, D, z).to(dtype_in)  # (B, D, L)


def _log_depth_scan(decay: torch.Tensor, drive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """h[t] = decay[t] h[t-1] + drive[t] along dim 2 from h[-1] = 0, in ceil(log2 K) steps.

    Returns (h, prod_{s<=t} decay[s]): the second carries a state from before the chunk. Out of
    place (torch.cat) so autograd can differentiate it.
    """
    a, b = decay, drive
    step = 1
    length = a.shape[2]
    in_place = not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
    while step < length:
        if in_place:  # inference: update the tails only (the products are taken before writing)
            b[:, :, step:] += a[:, :, step:] * b[:, :, :-step]
            a[:, :, step:] = a[:, :, step:] * a[:, :, :-step]
        else:
            b = torch.cat((b[:, :, :step], b[:, :, step:] + a[:, :, step:] * b[:, :, :-step]), dim=2)
            a = torch.cat((a[:, :, :step], a[:, :, step:] * a[:, :, :-step]), dim=2)
        step *= 2
    return b, a


def _scan_inputs(u, delta, A, B, C, delta_bias, delta_softplus):
    """The scan's inputs in fp32 (the state recurrence accumulates): u, the (biased, softplus-ed)
    step sizes, A, and B / C as (B, 1, L, N) for broadcasting over channels."""
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    Bt = B.float().transpose(1, 2)[:, None]  # (B, 1, L, N)
    Ct = C.float().transpose(1, 2)[:, None]  # (B, 1, L, N)
    return u, delta, A.float(), Bt, Ct


def _scan_output(y: torch.Tensor, u: torch.Tensor, D, z) -> torch.Tensor:
    """The skip term D * u and the SiLU gate z on the scanned output y (B, D, L)."""
    if D is not None:
        y = y + D.float()[:, None] * u
    if z is not None:
        y = y * F.silu(z.float())
    return y
