"""Stage 3: StyleInV training with first-frame-aware sparse training (FFA-ST, Sec. 3.4 of the paper):
L_SI = lambda_adv * L_adv + lambda_rec * L_rec (Eq. 4) + lambda_reg * L_reg (Eq. 5); D with lazy R1 through
video-consistent ADA. Also the stage description the shared training loop runs."""

import copy

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import distributed
from training import image_utils
from training.augment import build_augment
from training.loss_stylegan2 import d_logistic_loss, r1_loss
from training.training_loop import Phase, Stage, make_adam, metrics_hook


# Fake timestamps [N, 4] in frames: SPEC 1.7's sampler (shared with the real clips) with a fractional offset.
def sample_times(batch_size: int, rng: np.random.Generator, max_num_frames: int = 128, max_dist: int = 32,
                 fractional: bool = True) -> np.ndarray:
    from training.dataset import sample_clip_times
    return np.stack([sample_clip_times(rng, max_num_frames, 4, max_num_frames, max_dist, fractional=fractional)
                     for _ in range(batch_size)])


# numpy Generator state (PCG64: nested dicts of Python ints) kept as plain data for weights_only checkpoints.
def _plain_rng_state(state: dict) -> dict:
    return {k: (_plain_rng_state(v) if isinstance(v, dict) else int(v) if not isinstance(v, str) else v)
            for k, v in state.items()}


# The SI (motion generator) and D losses of StyleInV. G is frozen: gradients flow through G.synthesis into the
# motion generator only.
class StyleInVLoss:
    def __init__(self, G, motion_generator, D, stats, augment_pipe=None, ada=None, lambda_adv: float = 1.0,
                 lambda_rec: float = 10.0, lambda_reg: float = 0.05, r1_gamma: float = 1.0,
                 noise_mode: str = "const", first_frame_in_D: bool = True, max_num_frames: int = 128,
                 max_dist: int = 32, fractional_t: bool = True, videos_per_content: int = 1, seed=0):
        self.G, self.motion_generator, self.D, self.stats = G, motion_generator, D, stats
        self.augment_pipe, self.ada = augment_pipe, ada
        self.lambda_adv, self.lambda_rec, self.lambda_reg = lambda_adv, lambda_rec, lambda_reg
        self.r1_gamma, self.noise_mode, self.first_frame_in_D = r1_gamma, noise_mode, first_frame_in_D
        self.max_num_frames, self.max_dist, self.fractional_t = max_num_frames, max_dist, fractional_t
        self.videos_per_content = videos_per_content
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict:
        return dict(rng=_plain_rng_state(self.rng.bit_generator.state))

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def synthesize(self, w: torch.Tensor) -> torch.Tensor:
        return self.G.synthesis(w.unsqueeze(1).expand(-1, self.G.num_ws, -1), noise_mode=self.noise_mode)

    # A fake sparse clip: w0 = mapping(z) (no truncation), x0 = G(w0), w_t for 4 timestamps, their frames. With
    # videos_per_content = k, k consecutive fakes share w0 (and differ in motion), as the reals' groups share content.
    # first_frame=False puts x0 in place of G(w_t0), which only the reconstruction term needs.
    def sample_fake(self, n: int, device, first_frame: bool = True):
        with torch.no_grad():
            k = self.videos_per_content
            z = torch.randn([-(-n // k), self.G.z_dim], device=device).repeat_interleave(k, dim=0)[:n]
            w0 = self.G.mapping(z, torch.zeros([n, self.G.c_dim], device=device))[:, 0]
            x0 = self.synthesize(w0)
        t = torch.from_numpy(sample_times(n, self.rng, self.max_num_frames, self.max_dist, self.fractional_t))
        t = t.to(device)
        w_t = self.motion_generator(w0, t, x0=x0)
        w_frames = w_t if first_frame else w_t[:, 1:]
        frames = self.synthesize(w_frames.flatten(0, 1)).unflatten(0, w_frames.shape[:2])
        if not first_frame:
            frames = torch.cat([x0.unsqueeze(1), frames], dim=1)
        return w0, t, x0, w_t, frames

    # FFA-ST input of D (Sec. 3.4 / SPEC 3.4): the fake's frame 0 is replaced by x0 = G(w0); the ablation without a
    # first frame in D drops frame 0 (and its time) from fakes and reals alike.
    def run_D(self, frames: torch.Tensor, t: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        if x0 is not None:
            frames = torch.cat([x0.unsqueeze(1), frames[:, 1:]], dim=1)
        if not self.first_frame_in_D:
            frames, t = frames[:, 1:], t[:, 1:]
        if self.augment_pipe is not None:
            frames = self.augment_pipe(frames)  # one transform per video, identical for all its frames
        return self.D(frames, t)

    def accumulate_gradients(self, phase: str, batch, gain: float) -> dict[str, torch.Tensor]:
        return getattr(self, f"_{phase}")(batch, gain)

    # Motion generator: adversarial + first-frame reconstruction (Eq. 4) + latent regularisation (Eq. 5).
    def _SImain(self, batch, gain):
        w0, t, x0, w_t, frames = self.sample_fake(batch[0].shape[0], batch[0].device)
        logits = self.run_D(frames, t, x0)
        terms = {"adv": F.softplus(-logits).flatten() * self.lambda_adv}
        if self.lambda_rec > 0:
            terms["first_frame_recon"] = (frames[:, 0] - x0).square().mean([1, 2, 3]) * self.lambda_rec
        if self.lambda_reg > 0:
            terms["latent_reg"] = (w_t - w0.unsqueeze(1)).norm(dim=2).mean(1) * self.lambda_reg
        loss = sum(term.mean() for term in terms.values())
        for name, term in terms.items():
            self.stats.report(f"Loss/SI/{name}", term)
        self.stats.report("Loss/SI/loss", loss)
        self.stats.report("Loss/scores/fake", logits)
        loss.mul(gain).backward()
        return terms

    # D: logistic loss on a fresh fake clip and a real clip; reals feed ADA.
    def _Dmain(self, batch, gain):
        real, real_t = image_utils.to_float(batch[0]), batch[1].float()
        with torch.no_grad():
            _, t, _, _, frames = self.sample_fake(real.shape[0], real.device, first_frame=False)
        return d_logistic_loss(self.run_D(frames, t), self.run_D(real, real_t), self.ada, self.stats, gain)

    # D: lazy R1 over all frames of the real clip, through the augmentation.
    def _Dreg(self, batch, gain):
        times = batch[1].float()
        return r1_loss(image_utils.to_float(batch[0]), lambda x: self.run_D(x, times), self.r1_gamma, self.stats,
                       gain)


# Frames of a few fixed videos from the EMA motion generator, one row per video: [rows*H, cols*W, C].
@torch.no_grad()
def video_grid(G, motion_generator, w0, motion_z, times, noise_mode: str) -> np.ndarray:
    t = times.unsqueeze(0).expand(w0.shape[0], -1)
    w_t = motion_generator(w0, t, motion_z=motion_z)
    frames = G.synthesis(w_t.flatten(0, 1).unsqueeze(1).expand(-1, G.num_ws, -1), noise_mode=noise_mode)
    return image_utils.tile(image_utils.to_uint8(frames), times.shape[0])


# build_styleinv_stage's keyword arguments for a stage-3 config (configs/*.yaml, read by train_styleinv.py) and a
# stage-2 snapshot.
def config_stage_kwargs(cfg: dict, checkpoint_path: str, seed: int = 0) -> dict:
    train, data = cfg["train"], cfg["data"]
    augment_kwargs = None
    if train["aug"] != "noaug":
        augment_kwargs = dict(preset=train["augpipe"], adaptive=train["aug"] == "ada", target=train["target"],
                              p=train.get("p", 0.0))
    loss_kwargs = dict(cfg["loss"], max_dist=data["max_dist"], fractional_t=data["fractional_t"],
                       videos_per_content=data.get("videos_per_content", 1))
    return dict(checkpoint_path=checkpoint_path, motion_kwargs=cfg["motion"], fuse_kwargs=cfg["fuse"],
                D_kwargs=cfg["discriminator"], loss_kwargs=loss_kwargs, skip_encoder=cfg["model"]["skip_encoder"],
                use_ffa_ape=cfg["model"]["use_ffa_ape"],
                zero_init_residual=cfg["model"].get("zero_init_residual", False), lr_motion=train["lr_motion"],
                lr_D=train["lr_D"], ema_kimg=train["ema_kimg"],
                augment_kwargs=augment_kwargs, seed=seed)


# The stage-3 description: frozen G (+ the stage-2 encoder kept for reference), D, the motion generator and its
# EMA; phases SImain, Dmain and lazy Dreg.
def build_styleinv_stage(*, device, stats, dataset, checkpoint_path: str, motion_kwargs: dict, fuse_kwargs: dict,
                         D_kwargs: dict, loss_kwargs: dict, skip_encoder: bool = False, use_ffa_ape: bool = True,
                         zero_init_residual: bool = False, lr_motion: float = 1e-4, lr_D: float = 2e-3,
                         ema_kimg: float = 20.0, augment_kwargs: dict | None = None, D_reg_interval: int = 16,
                         grid_videos: int = 6,
                         grid_frames: int = 8, seed: int = 0) -> Stage:
    from training import checkpoint
    from training.networks_styleinv import MotionGenerator
    from training.networks_video_d import VideoDiscriminator
    nets = checkpoint.load_networks(checkpoint_path)
    if "encoder" not in nets or "G" not in nets:
        raise ValueError(f"--checkpoint {checkpoint_path}: expected a stage-2 snapshot (networks 'encoder' and "
                         f"'G'), found {', '.join(nets) or 'none'}")
    G = nets["G"].eval().requires_grad_(False).to(device)
    encoder = nets["encoder"].eval().requires_grad_(False).to(device)
    if G.img_resolution != dataset.resolution:
        raise ValueError(f"The stage-1 generator makes {G.img_resolution}px frames but the data is "
                         f"{dataset.resolution}px")
    last_size = G.img_resolution // 2 ** len(encoder.units_per_stage)
    if not skip_encoder and last_size < 2:
        raise ValueError(f"StyleInV's AdaIN blocks need at least 2x2 features after the encoder's "
                         f"{len(encoder.units_per_stage)} stride-2 stages; {G.img_resolution}px frames give "
                         f"{last_size}x{last_size}. Use frames of {2 ** (len(encoder.units_per_stage) + 1)}px or more.")
    k = loss_kwargs.get("videos_per_content", 1)
    if k > 1 and (dataset.num_videos % k or len(dataset) != dataset.num_videos):
        raise ValueError(f"data.videos_per_content = {k} needs the videos in groups of {k} of one content, in order "
                         f"(scripts/dataset_tool.py synthetic --videos-per-content), no mirroring; "
                         f"the data has {dataset.num_videos} videos and {len(dataset)} clips")
    motion_generator = MotionGenerator(
        w_dim=G.w_dim, num_ws=G.num_ws, encoder_kwargs=encoder.init_kwargs["backbone_kwargs"],
        motion_kwargs=motion_kwargs, fuse_kwargs=fuse_kwargs, skip_encoder=skip_encoder, use_ffa_ape=use_ffa_ape)
    if not skip_encoder:
        motion_generator.init_from_encoder(encoder, zero_residual=zero_init_residual)
    motion_generator = motion_generator.train().to(device)
    noise_mode = loss_kwargs.get("noise_mode", "const")
    motion_generator.attach_generator(G, noise_mode)
    motion_generator_ema = copy.deepcopy(motion_generator).eval()
    num_frames = 4 if loss_kwargs.get("first_frame_in_D", True) else 3
    max_num_frames = motion_kwargs.get("max_num_frames", 128)
    D = VideoDiscriminator(img_resolution=G.img_resolution, img_channels=G.img_channels, num_frames=num_frames,
                           max_num_frames=max_num_frames, **D_kwargs).train().to(device)
    networks = dict(G=G, encoder=encoder, D=D, motion_generator=motion_generator,
                    motion_generator_ema=motion_generator_ema)

    augment_pipe, ada = build_augment(augment_kwargs, device)
    if augment_pipe is not None:
        networks["augment_pipe"] = augment_pipe
    loss = StyleInVLoss(G, motion_generator, D, stats, augment_pipe=augment_pipe, ada=ada,
                        max_num_frames=max_num_frames, seed=[seed, distributed.get_rank()], **loss_kwargs)

    si_params = list(motion_generator.parameters())
    phases = [Phase("SImain", si_params, make_adam(si_params, lr=lr_motion), 1)]
    d_opt = make_adam(D.parameters(), lr=lr_D, reg_interval=D_reg_interval)
    phases += [Phase("Dmain", list(D.parameters()), d_opt, 1),
               Phase("Dreg", list(D.parameters()), d_opt, D_reg_interval)]

    gen = torch.Generator().manual_seed(seed)
    grid_z = torch.randn([grid_videos, G.z_dim], generator=gen).to(device)
    grid_times = torch.linspace(0, max_num_frames - 1, grid_frames, device=device).round()
    with torch.no_grad():
        grid_w0 = G.mapping(grid_z, torch.zeros([grid_videos, G.c_dim], device=device))[:, 0]
    grid_motion_z = motion_generator.sample_motion_z(grid_videos, max_num_frames - 1, device="cpu",
                                                    generator=gen).to(device)
    real_idx = np.linspace(0, len(dataset) - 1, grid_videos).round().astype(int)
    reals = torch.from_numpy(np.stack([dataset[int(i)][0] for i in real_idx]))  # [n, F, C, H, W]

    def snapshot_images() -> dict:
        return {"reals": image_utils.tile(reals.flatten(0, 1), reals.shape[1]),
                "fakes": video_grid(G, motion_generator_ema, grid_w0, grid_motion_z, grid_times, noise_mode)}

    return Stage(networks=networks, phases=phases, loss=loss, ema={"motion_generator_ema": "motion_generator"},
                 ema_kimg=ema_kimg, ema_rampup=None, augment=ada, nimg_per_sample=num_frames,
                 status_keys=("Loss/SI/loss", "Loss/SI/first_frame_recon", "Loss/D/loss"),
                 snapshot_images=snapshot_images, compute_metrics=_metrics(G, motion_generator_ema, noise_mode,
                                                                           dataset, device), batch_group=k)


# Metrics on the EMA motion generator: a video source over the in-memory networks (the same one
# calc_metrics.py builds from a snapshot file).
def _metrics(G, motion_generator_ema, noise_mode, dataset, device):
    def compute(names, snapshot, detector_dir):
        from training.video_generation import VideoGenerator, video_source
        fake_clips = video_source(VideoGenerator(G, motion_generator_ema, None, noise_mode, device))
        return metrics_hook(fake_clips, dataset.path, device, dataset.resolution)(names, snapshot, detector_dir)
    return compute
