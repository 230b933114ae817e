"""Projection of a real video into StyleInV's latent space (Eq. 2): one first-frame latent w0 and the motion noise
anchors motion_z, found by optimisation, so that a real clip can be replayed, re-animated, continued past its end,
played in slow motion or decoded by a fine-tuned generator (Sec. 3.5, 4.2).

Every frame is G(w_t), w_t = E(G(w0), MLP([w0, v_t])) + w0, with v_t a function of the anchor rows of motion_z
around t (FFA-APE). The projection first fits w0 so that G(w0) reconstructs frame 0 (starting from the stage-2
encoder's inversion when the snapshot holds it), then fits the anchor rows the clip depends on (optionally w0 with
them) so that the frames at t = 0..T-1 reconstruct the clip. Long clips are handled in time windows that share one
motion_z: each step accumulates the gradient of every window, so memory is bounded by the window size.
"""

import math
from dataclasses import dataclass, field

import torch
import tqdm

from training import video_generation as vgen
from training.image_utils import to_float, to_uint8
from training.loss_encoder import psnr, reconstruction_terms


# Projection settings. The defaults fit a 32-frame 32 px clip of the demo checkpoint in about two minutes on two
# CPU cores (docs/GENERATION.md, "Projecting a real video").
@dataclass
class ProjectionConfig:
    w0_steps: int = 100  # Adam steps fitting G(w0) to frame 0.
    motion_steps: int = 300  # Adam steps fitting the clip with motion_z (and w0 with joint_w0).
    w0_lr: float = 0.05  # Learning rate of w0 in both stages (cosine decay to 0 in each).
    motion_lr: float = 0.05
    joint_w0: bool = True  # Also refine w0 in the motion stage (a model's frame 0 is only close to G(w0), Eq. 4,
    # so w0 fitted to frame 0 alone leaves the whole video off).
    lpips_weight: float = 1.0  # Weight of LPIPS beside the MSE, when an LPIPS network is given.
    prior_weight: float = 0.01  # Weight of motion_prior on the optimised anchor rows.
    window: int = 32  # Frames per network call.
    seed: int = 0  # The initial motion noise is seed_motion_z(seed); rows the clip does not use keep it.

    def __post_init__(self):
        if min(self.w0_steps, self.motion_steps) < 0 or self.window < 1:
            raise ValueError(f"ProjectionConfig: need steps >= 0 and window >= 1, got w0_steps={self.w0_steps}, "
                             f"motion_steps={self.motion_steps}, window={self.window}")


# A projected clip: its latents, its reconstruction and how close that is (per frame), and the loss per step.
@dataclass
class ProjectionResult:
    w0: torch.Tensor  # [1, w_dim]
    motion_z: torch.Tensor  # [1, L, z_dim], covering the clip (extend_motion_z for longer videos)
    t: torch.Tensor  # [T] frame times 0..T-1
    w_t: torch.Tensor  # [1, T, w_dim]
    reconstruction: torch.Tensor  # uint8 [T, C, H, W]
    psnr: torch.Tensor  # [T] dB, reconstruction vs clip
    lpips: torch.Tensor | None  # [T], when an LPIPS network was given
    losses: dict[str, list[float]] = field(default_factory=dict)  # {"w0": [...], "motion": [...]} per step
    config: ProjectionConfig = field(default_factory=ProjectionConfig)


# Anchor rows [first, end) of motion_z that frames at times <= t_max depend on (SPEC 1.2-1.5): v_t uses the anchor
# codes floor(t/delta) and the next one; under FFA-APE code k sees rows <= k and row 0 is replaced by c0, under the
# original APE code k sees rows k .. k + extra_anchors.
def clip_anchor_rows(ffa_ape: torch.nn.Module, t_max: float) -> tuple[int, int]:
    first = 1 if ffa_ape.first_frame_aware else 0
    return first, math.floor(t_max / ffa_ape.delta) + 2 + ffa_ape.extra_anchors


# Norm-shell prior on anchor rows [N, n, z_dim]: samples of N(0, I) have a mean square close to 1 (|z|^2 ~ z_dim),
# so each row's mean square is held near 1. Unlike the Gaussian log-density it does not pull rows toward 0, a point
# far (in z_dim dimensions) from the noise the motion generator was trained on.
def motion_prior(rows: torch.Tensor) -> torch.Tensor:
    return (rows.square().mean(-1) - 1).square().mean()


# Per-frame reconstruction loss [n] of G's images y against targets x (both [n, C, H, W], x in [-1, 1]): the
# encoder stage's MSE + lpips_weight * LPIPS (LPIPS when a network is given). Where the target is saturated
# (x = +-1), y past it shows as the same value once clamped for display, so it is clamped there; elsewhere y stays
# unclamped, so that values out of range are pulled back in.
def frame_loss(y: torch.Tensor, x: torch.Tensor, lpips: torch.nn.Module | None = None,
               lpips_weight: float = 1.0) -> torch.Tensor:
    y = torch.where(x >= 1, y.clamp(max=1), torch.where(x <= -1, y.clamp(min=-1), y))
    return sum(reconstruction_terms(y, x, 1.0, lpips, lpips_weight).values())


# Frozen LPIPS-Alex for the projection loss, or None (saying so) when its weight files are not found.
def find_lpips(folder: str | None = None, device: torch.device | str = "cpu") -> torch.nn.Module | None:
    from training.perceptual import load_lpips
    try:
        return load_lpips("alex", path=folder, backbone_path=folder, device=device)
    except FileNotFoundError as e:
        print(f"LPIPS is not available, so the projection uses MSE alone. {e}")
        return None


# Adam over parameter groups with a cosine learning-rate decay to 0 over `steps`.
def _optimizer(groups: list[dict], steps: int):
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999))
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))


# Run `steps` optimisation steps; step_loss() computes the loss, calls backward and returns the loss value.
def _optimise(groups: list[dict], steps: int, step_loss, desc: str, progress: bool) -> list[float]:
    opt, schedule = _optimizer(groups, steps)
    losses = []
    with tqdm.trange(steps, desc=desc, unit="step", dynamic_ncols=True, disable=not progress) as bar:
        for _ in bar:
            opt.zero_grad(set_to_none=True)
            losses.append(step_loss())
            opt.step()
            schedule.step()
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses


# Stage A: w0 [1, w_dim] with G(w0) close to frame0 (float [1, C, H, W]), from the stage-2 inversion of frame 0
# when vg has the encoder, else from G's average latent.
def fit_w0(vg: vgen.VideoGenerator, frame0: torch.Tensor, config: ProjectionConfig,
           lpips: torch.nn.Module | None = None, progress: bool = True) -> tuple[torch.Tensor, list[float]]:
    if vg.encoder is not None:
        from training.networks_encoder import invert
        w0 = invert(vg.encoder, vg.G, frame0)
    else:
        w0 = vg.G.mapping.w_avg.reshape(1, -1)
    w0 = w0.detach().clone().requires_grad_(True)

    def step_loss() -> float:
        y = vg.motion_generator.synthesize_first_frame(w0)
        loss = frame_loss(y, frame0, lpips, config.lpips_weight).mean()
        loss.backward()
        return float(loss.detach())

    losses = _optimise([dict(params=[w0], lr=config.w0_lr)], config.w0_steps, step_loss, "Projecting w0", progress)
    return w0.detach(), losses


# Stage B: the anchor rows of motion_z the clip depends on (and w0 with config.joint_w0) so that the frames at
# t = 0..T-1 reconstruct `frames` (uint8 [T, C, H, W]); the loss of each step is summed over time windows of
# config.window frames, each back-propagated on its own. Returns (w0, motion_z [1, L, z_dim], losses).
def fit_motion(vg: vgen.VideoGenerator, frames: torch.Tensor, w0: torch.Tensor, config: ProjectionConfig,
               lpips: torch.nn.Module | None = None, progress: bool = True):
    T = frames.shape[0]
    t = vgen.video_times(T).to(vg.device)
    ffa_ape = vg.motion_generator.ffa_ape
    motion_z = vgen.seed_motion_z(config.seed, vg.num_anchors(T - 1), ffa_ape.z_dim).to(vg.device)
    first, end = clip_anchor_rows(ffa_ape, T - 1)
    rows = motion_z[:, first:end].clone().requires_grad_(True)
    w0 = w0.detach().clone().requires_grad_(config.joint_w0)
    x0 = None if config.joint_w0 else vg.first_frames(w0)  # With joint_w0, x0 = G(w0) is recomputed with grad.
    groups = [dict(params=[rows], lr=config.motion_lr)] + ([dict(params=[w0], lr=config.w0_lr)]
                                                          if config.joint_w0 else [])

    def step_loss() -> float:
        total = config.prior_weight * motion_prior(rows)
        total.backward()
        total = float(total.detach())
        for start in range(0, T, config.window):
            window = slice(start, start + config.window)
            z = torch.cat([motion_z[:, :first], rows, motion_z[:, end:]], dim=1)
            w_t = vg.motion_generator(w0, t[None, window], motion_z=z, x0=x0)
            y = vgen.synthesize_latents(vg.G, w_t, vg.noise_mode)
            x = to_float(frames[window].to(vg.device))
            loss = frame_loss(y, x, lpips, config.lpips_weight).sum() / T
            loss.backward()
            total += float(loss.detach())
        return total

    losses = _optimise(groups, config.motion_steps, step_loss, "Projecting motion", progress)
    motion_z = torch.cat([motion_z[:, :first], rows.detach(), motion_z[:, end:]], dim=1)
    return w0.detach(), motion_z, losses


# Project a clip of real frames (uint8 [T, C, H, W] at the model's resolution, T >= 2) into (w0, motion_z); see
# the module docstring. `lpips` (e.g. find_lpips()) adds LPIPS to the MSE. Deterministic for config.seed with a
# deterministic noise mode (const or none).
def project_video(vg: vgen.VideoGenerator, frames: torch.Tensor, config: ProjectionConfig | None = None,
                  lpips: torch.nn.Module | None = None, progress: bool = True) -> ProjectionResult:
    config = config or ProjectionConfig()
    check_clip(frames, vg)
    frame0 = to_float(frames[:1].to(vg.device))
    w0, w0_losses = fit_w0(vg, frame0, config, lpips, progress)
    w0, motion_z, motion_losses = fit_motion(vg, frames, w0, config, lpips, progress)
    t = vgen.video_times(frames.shape[0])
    w_t = torch.cat(list(vg.iter_latent_chunks(w0, motion_z, t, config.window)), dim=1)
    reconstruction = torch.cat([vg.decode(w)[0] for w in w_t.split(config.window, dim=1)])
    scores = _scores(reconstruction, frames, lpips, config.window)
    return ProjectionResult(w0=w0, motion_z=motion_z, t=t, w_t=w_t, reconstruction=reconstruction,
                            psnr=scores["psnr"], lpips=scores.get("lpips"),
                            losses=dict(w0=w0_losses, motion=motion_losses), config=config)


# A clip the projection accepts: uint8 [T >= 2, C, H, W] with G's channels and resolution.
def check_clip(frames: torch.Tensor, vg: vgen.VideoGenerator) -> None:
    if not torch.is_tensor(frames) or frames.dtype != torch.uint8 or frames.ndim != 4:
        raise ValueError(f"project_video: expected frames as a uint8 tensor [T, C, H, W], got "
                         f"{getattr(frames, 'dtype', type(frames))} {tuple(getattr(frames, 'shape', ()))}")
    T, C, H, W = frames.shape
    if T < 2:
        raise ValueError(f"project_video: the clip has {T} frame(s); projecting motion needs at least 2")
    if C != vg.G.img_channels:
        raise ValueError(f"project_video: the frames have {C} channel(s) but the model makes {vg.G.img_channels}-"
                         f"channel frames; convert them (generate.py project converts to RGB)")
    if (H, W) != (vg.resolution, vg.resolution):
        raise ValueError(f"project_video: the frames are {W}x{H} but the model makes {vg.resolution}x"
                         f"{vg.resolution}; resize them (generate.py project center-crops and resizes)")


# Per-frame PSNR [T] (and LPIPS with a network) of uint8 images `ours` against `frames` (both [T, C, H, W]).
@torch.no_grad()
def _scores(ours: torch.Tensor, frames: torch.Tensor, lpips: torch.nn.Module | None, window: int) -> dict:
    scores = dict(psnr=[], lpips=[])
    for y, x in zip(ours.split(window), frames.split(window), strict=True):
        y, x = to_float(y.to(frames.device)), to_float(x)
        scores["psnr"].append(psnr(y, x).cpu())
        if lpips is not None:
            device = next(lpips.parameters()).device
            scores["lpips"].append(lpips(y.to(device), x.to(device)).flatten().cpu())
    return {k: torch.cat(v) for k, v in scores.items() if v}


# Per-frame PSNR [T] of the two baselines against the clip frames (uint8 [T, C, H, W]): "static" shows G(w0) on
# every frame; "encoder" inverts every frame on its own with the stage-2 encoder, G(E(x_t)) (absent without one).
@torch.no_grad()
def baseline_psnr(vg: vgen.VideoGenerator, frames: torch.Tensor, w0: torch.Tensor, window: int = 32) -> dict:
    x0 = to_uint8(vg.first_frames(w0))
    baselines = dict(static=_scores(x0.expand_as(frames), frames, None, window)["psnr"])
    if vg.encoder is not None:
        from training.networks_encoder import reconstruct
        inverted = torch.cat([to_uint8(reconstruct(vg.encoder, vg.G, to_float(x.to(vg.device)), vg.noise_mode)[1])
                              for x in frames.split(window)])
        baselines["encoder"] = _scores(inverted, frames, None, window)["psnr"]
    return baselines


# motion_z [1, L, z_dim] of a projection (initial draw seed_motion_z(seed)) extended to num_anchors rows: the new
# rows continue that draw, so the frames up to the clip's end are unchanged, and the motion past it is fresh noise
# that FFA-APE's causal convs join to the projected anchors.
def extend_motion_z(motion_z: torch.Tensor, num_anchors: int, seed: int) -> torch.Tensor:
    L = motion_z.shape[1]
    if num_anchors <= L:
        return motion_z
    more = vgen.seed_motion_z(seed, num_anchors, motion_z.shape[2])[:, L:]
    return torch.cat([motion_z, more.to(motion_z.device, motion_z.dtype)], dim=1)
