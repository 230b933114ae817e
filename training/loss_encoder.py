"""Stage 2: the pSp-style W-space inversion encoder (Sec. 3.1 of the paper, Eq. 1) trained to reconstruct frames
through the frozen stage-1 generator: L = l2 * MSE + lpips * LPIPS-Alex + id * ArcFace (SPEC 5)."""

import copy

import numpy as np
import torch
import torch.nn.functional as F

from torch_utils import distributed
from training import image_utils
from training.ranger import ranger
from training.training_loop import Phase, Stage, make_adam


# Reconstruction loss of the inversion encoder; G is frozen and only differentiated through.
class EncoderLoss:
    def __init__(self, encoder, G, stats, l2_weight: float = 1.0, lpips=None, lpips_weight: float = 0.8,
                 identity=None, id_weight: float = 0.1, w_norm_weight: float = 0.0, noise_mode: str = "const",
                 xflip: bool = True):
        self.encoder, self.G, self.stats = encoder, G, stats
        self.l2_weight, self.lpips, self.lpips_weight = l2_weight, lpips, lpips_weight
        self.identity, self.id_weight, self.w_norm_weight = identity, id_weight, w_norm_weight
        self.noise_mode, self.xflip = noise_mode, xflip

    # x -> w = E(x) + w_avg -> G.synthesis(w broadcast to every layer).
    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.encoder(x)
        return w, self.G.synthesis(w.unsqueeze(1).expand(-1, self.G.num_ws, -1), noise_mode=self.noise_mode)

    def accumulate_gradients(self, phase: str, batch, gain: float) -> dict[str, torch.Tensor]:
        x = image_utils.to_float(batch[0])
        if self.xflip:  # random horizontal flip (input and target are the same image)
            flip = torch.rand([x.shape[0], 1, 1, 1], device=x.device) < 0.5
            x = torch.where(flip, x.flip(3), x)
        w, y = self.reconstruct(x)
        terms = reconstruction_terms(y, x, self.l2_weight, self.lpips, self.lpips_weight)
        if self.identity is not None and self.id_weight > 0:
            terms["id"] = self.identity(y, x).flatten() * self.id_weight
        if self.w_norm_weight > 0:
            terms["w_norm"] = (w - self.encoder.w_avg).norm(dim=1) * self.w_norm_weight
        loss = sum(t.mean() for t in terms.values())
        for name, t in terms.items():
            self.stats.report(f"Loss/E/{name}", t)
        self.stats.report("Loss/E/loss", loss)
        loss.mul(gain).backward()
        return terms


# Weighted per-image reconstruction terms [N] of images y against targets x (both [N, C, H, W] in [-1, 1]): "l2"
# (MSE) and, with an LPIPS network, "lpips". Shared by the encoder and the video projection (training/projection.py).
def reconstruction_terms(y: torch.Tensor, x: torch.Tensor, l2_weight: float = 1.0, lpips=None,
                         lpips_weight: float = 0.8) -> dict[str, torch.Tensor]:
    terms = {"l2": F.mse_loss(y, x, reduction="none").mean([1, 2, 3]) * l2_weight}
    if lpips is not None and lpips_weight > 0:
        terms["lpips"] = lpips(y, x).flatten() * lpips_weight
    return terms


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak-to-peak range 2)."""
    mse = (x.float() - y.float()).square().mean([1, 2, 3]).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)


# Held-out frames: the last `num_videos` videos of a video dataset (never trained on), one frame each at evenly
# spaced positions so the set is fixed.
def holdout_frames(dataset, num_frames: int) -> torch.Tensor:
    idx = np.linspace(0, len(dataset) - 1, num_frames).round().astype(int)
    return torch.from_numpy(np.stack([dataset[int(i)][0] for i in idx]))


# The stage-2 description: networks encoder + frozen G, one phase Emain, evaluation on held-out frames.
def build_encoder_stage(*, device, stats, dataset, generator: str, encoder_kwargs: dict, loss_kwargs: dict,
                        optimizer: str = "ranger", lr: float = 1e-4, init_backbone: str | None = None,
                        lpips_path: str | None = None, arcface_path: str | None = None,
                        holdout_data_kwargs: dict | None = None, num_eval: int = 16) -> Stage:
    from training import checkpoint
    from training.networks_encoder import WEncoder, he_init_, load_ir_se50_backbone
    nets = checkpoint.load_networks(generator)
    G = nets.get("G_ema", nets.get("G"))
    if G is None:
        raise ValueError(f"--generator {generator}: the file holds no generator (G_ema or G)")
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)
    if G.img_resolution != dataset.resolution:
        raise ValueError(f"--generator {generator} makes {G.img_resolution}px images but the data is "
                         f"{dataset.resolution}px")
    encoder = WEncoder(w_dim=G.w_dim, num_ws=G.num_ws, w_avg=G.mapping.w_avg, **encoder_kwargs)
    he_init_(encoder)
    if init_backbone is not None:
        load_ir_se50_backbone(encoder, init_backbone)
    encoder = encoder.train().to(device)
    if distributed.get_world_size() > 1 and device.type == "cuda":
        encoder = torch.nn.SyncBatchNorm.convert_sync_batchnorm(encoder)

    loss_kwargs = dict(loss_kwargs)
    lpips = identity = None
    if loss_kwargs.get("lpips_weight", 0.8) > 0:
        from training.perceptual import load_lpips
        lpips = load_lpips("alex", path=lpips_path, device=device)
    if loss_kwargs.get("id_weight", 0.1) > 0:
        from training.perceptual import IdentityLoss, load_arcface
        identity = IdentityLoss(load_arcface(arcface_path, device=device))
    loss = EncoderLoss(encoder, G, stats, lpips=lpips, identity=identity, **loss_kwargs)

    params = list(encoder.parameters())
    opt = ranger(params, lr=lr) if optimizer == "ranger" else make_adam(params, lr=lr, betas=(0.9, 0.999))
    phases = [Phase("Emain", params, opt, 1)]

    from training.dataset import open_dataset
    eval_set = open_dataset(**holdout_data_kwargs) if holdout_data_kwargs else dataset
    eval_images = holdout_frames(eval_set, num_eval).to(device)
    eval_cols = int(np.ceil(np.sqrt(num_eval)))

    @torch.no_grad()
    def reconstructions() -> torch.Tensor:
        encoder.eval()
        try:
            return loss.reconstruct(image_utils.to_float(eval_images))[1]
        finally:
            encoder.train()

    def snapshot_images() -> dict:
        pairs = torch.stack([eval_images, image_utils.to_uint8(reconstructions())], 1).flatten(0, 1)
        return {"reconstructions": image_utils.tile(pairs, 2 * eval_cols)}  # input | reconstruction

    # Baseline: the same PSNR for the average image G(w_avg), which any useful encoder must beat.
    with torch.no_grad():
        x_eval = image_utils.to_float(eval_images)
        w_avg = G.mapping.w_avg.reshape(1, 1, -1).expand(x_eval.shape[0], G.num_ws, -1)
        psnr_w_avg = float(psnr(G.synthesis(w_avg, noise_mode=loss.noise_mode), x_eval).mean())

    @torch.no_grad()
    def evaluate() -> dict:
        x, y = image_utils.to_float(eval_images), reconstructions()
        results = {"psnr": float(psnr(y, x).mean()), "psnr_w_avg": psnr_w_avg}
        if lpips is not None:
            results["lpips"] = float(lpips(y, x).mean())
        return {"metric": "reconstruction", "results": results}

    return Stage(networks=dict(encoder=encoder, G=G), phases=phases, loss=loss,
                 status_keys=("Loss/E/loss", "Loss/E/l2"), snapshot_images=snapshot_images, evaluate=evaluate)
