"""Stage 1: StyleGAN2 losses (non-saturating logistic, lazy R1, path length, style mixing), fine-tuning-based
style transfer (Sec. 3.5 of the paper), and the stage description the shared training loop runs."""

import copy

import numpy as np
import torch
import torch.nn.functional as F

from training import image_utils
from training.augment import build_augment
from training.training_loop import Phase, Stage, make_adam, metrics_hook


# StyleGAN2-ADA's loss. With `parent_G` set it is the style-transfer loss of Sec. 3.5: the child's images are pulled
# towards the frozen parent's for the same ws by LPIPS-VGG (`perceptual_weight`) and ArcFace (`identity_weight`).
class StyleGAN2Loss:
    def __init__(self, G, D, stats, augment_pipe=None, ada=None, r1_gamma: float = 10.0,
                 style_mixing_prob: float = 0.9, pl_weight: float = 0.0, pl_batch_shrink: int = 2,
                 pl_decay: float = 0.01, parent_G=None, perceptual=None, perceptual_weight: float = 0.0,
                 identity=None, identity_weight: float = 0.0):
        self.G, self.D, self.stats = G, D, stats
        self.update_w_avg = parent_G is None  # the transfer child's mapping network is frozen, w_avg included
        self.augment_pipe, self.ada = augment_pipe, ada
        self.r1_gamma, self.style_mixing_prob = r1_gamma, style_mixing_prob
        self.pl_weight, self.pl_batch_shrink, self.pl_decay = pl_weight, pl_batch_shrink, pl_decay
        self.parent_G, self.perceptual, self.identity = parent_G, perceptual, identity
        self.perceptual_weight, self.identity_weight = perceptual_weight, identity_weight
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)

    def state_dict(self) -> dict:
        return dict(pl_mean=self.pl_mean.cpu())

    def load_state_dict(self, state: dict) -> None:
        self.pl_mean.copy_(state["pl_mean"])

    # Mapping with style mixing: after a random cutoff the ws come from a second z.
    def run_mapping(self, z, c, update_w_avg: bool = True):
        ws = self.G.mapping(z, c, skip_w_avg_update=not (update_w_avg and self.update_w_avg))
        if self.style_mixing_prob > 0 and ws.shape[1] > 1:
            cutoff = torch.randint(1, ws.shape[1], [], device=ws.device)
            cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff, ws.shape[1])
            mixed = self.G.mapping(torch.randn_like(z), c, skip_w_avg_update=True)
            keep = torch.arange(ws.shape[1], device=ws.device)[None, :, None] < cutoff
            ws = torch.where(keep, ws, mixed)
        return ws

    def run_D(self, img, c):
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def _latents(self, batch):
        n = batch[0].shape[0]
        z = torch.randn([n, self.G.z_dim], device=batch[0].device)
        c = batch[1].to(torch.float32) if self.G.c_dim > 0 else torch.zeros([n, 0], device=z.device)
        return z, c

    def accumulate_gradients(self, phase: str, batch, gain: float) -> dict[str, torch.Tensor]:
        real = image_utils.to_float(batch[0])
        z, c = self._latents(batch)
        return getattr(self, f"_{phase}")(real, z, c, gain)

    # G: non-saturating logistic loss (+ the transfer consistency losses).
    def _Gmain(self, real, z, c, gain):
        ws = self.run_mapping(z, c)
        fake = self.G.synthesis(ws)
        logits = self.run_D(fake, c)
        loss = F.softplus(-logits).flatten()
        terms = {"G/adv": loss}
        if self.parent_G is not None:
            with torch.no_grad():
                target = self.parent_G.synthesis(ws)
            if self.perceptual_weight > 0:
                terms["G/perceptual"] = self.perceptual(fake, target).flatten() * self.perceptual_weight
                loss = loss + terms["G/perceptual"]
            if self.identity_weight > 0:
                terms["G/identity"] = self.identity(fake, target).flatten() * self.identity_weight
                loss = loss + terms["G/identity"]
        self.stats.report("Loss/scores/fake", logits)
        self.stats.report("Loss/G/loss", loss)
        loss.mean().mul(gain).backward()
        return terms

    # G: path-length regularisation on a shrunk batch, noise scaled by 1/sqrt(H*W).
    def _Greg(self, real, z, c, gain):
        n = max(z.shape[0] // self.pl_batch_shrink, 1)
        ws = self.run_mapping(z[:n], c[:n])
        fake = self.G.synthesis(ws)
        noise = torch.randn_like(fake) / np.sqrt(fake.shape[2] * fake.shape[3])
        grads, = torch.autograd.grad((fake * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()
        pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
        self.pl_mean.copy_(pl_mean)
        penalty = (lengths - pl_mean).square()
        self.stats.report("Loss/pl_penalty", penalty)
        loss = penalty * self.pl_weight
        self.stats.report("Loss/G/reg", loss)
        (fake[:, 0, 0, 0] * 0 + loss).mean().mul(gain).backward()
        return {"G/path_length": loss}

    # D: logistic loss on fakes and reals; reals also feed ADA's overfitting heuristic.
    def _Dmain(self, real, z, c, gain):
        with torch.no_grad():
            fake = self.G.synthesis(self.run_mapping(z, c, update_w_avg=False))
        return d_logistic_loss(self.run_D(fake, c), self.run_D(real, c), self.ada, self.stats, gain)

    # D: lazy R1 penalty gamma/2 * ||grad_x D(aug(x))||^2, differentiated through the augmentation.
    def _Dreg(self, real, z, c, gain):
        return r1_loss(real, lambda x: self.run_D(x, c), self.r1_gamma, self.stats, gain)


# D's non-saturating logistic loss softplus(D(fake)) + softplus(-D(real)); the real logits also feed ADA's
# overfitting heuristic (shared by stages 1 and 3).
def d_logistic_loss(fake_logits, real_logits, ada, stats, gain: float) -> dict[str, torch.Tensor]:
    if ada is not None:
        ada.accumulate(real_logits)
    loss = F.softplus(fake_logits).flatten() + F.softplus(-real_logits).flatten()
    stats.report("Loss/scores/real", real_logits)
    stats.report("Loss/signs/real", real_logits.sign())
    stats.report("Loss/D/loss", loss)
    loss.mean().mul(gain).backward()
    return {"D/logistic": loss}


# Lazy R1: gamma/2 * ||grad_x D(x)||^2 summed over all of a real sample (every frame of a clip), differentiated
# through whatever `run_D` does (the augmentation included).
def r1_loss(real, run_D, gamma: float, stats, gain: float) -> dict[str, torch.Tensor]:
    real = real.detach().requires_grad_(True)
    logits = run_D(real)
    grads, = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = grads.square().flatten(1).sum(1)
    loss = penalty * (gamma / 2)
    stats.report("Loss/r1_penalty", penalty)
    stats.report("Loss/D/reg", loss)
    (logits * 0 + loss[:, None]).mean().mul(gain).backward()
    return {"D/r1": loss}


# Parameters the transfer child trains: synthesis blocks above `freeze_res` (the mapping network and blocks
# b4..b{freeze_res} stay frozen, Sec. 3.5 / SPEC 7).
def transfer_trainable_params(G, freeze_res: int) -> list[torch.nn.Parameter]:
    params = []
    for name, p in G.named_parameters():
        parts = name.split(".")
        if parts[0] == "synthesis" and parts[1].startswith("b") and int(parts[1][1:]) > freeze_res:
            params.append(p)
    return params


def _real_grid(dataset, num: int, seed: int) -> torch.Tensor:
    rng = np.random.RandomState(seed)
    idx = rng.choice(len(dataset), size=min(num, len(dataset)), replace=False)
    return torch.from_numpy(np.stack([dataset[int(i)][0] for i in idx]))


# build_stylegan_stage's keyword arguments for a preset `spec` (training.presets.stylegan2_preset), as
# train_stylegan.py trains with them.
def preset_stage_kwargs(spec: dict, augment_kwargs: dict | None = None, transfer_kwargs: dict | None = None) -> dict:
    return dict(G_kwargs=spec["G_kwargs"], D_kwargs=spec["D_kwargs"], G_opt_kwargs=spec["G_opt_kwargs"],
                D_opt_kwargs=spec["D_opt_kwargs"], loss_kwargs=spec["loss_kwargs"], augment_kwargs=augment_kwargs,
                ema_kimg=spec["ema_kimg"], ema_rampup=spec["ema_rampup"], G_reg_interval=spec["G_reg_interval"],
                D_reg_interval=spec["D_reg_interval"], transfer_kwargs=transfer_kwargs)


# The stage-1 description: networks G, D, G_ema (+ frozen parent for transfer), phases Gmain/Greg/Dmain/Dreg.
def build_stylegan_stage(*, device, stats, dataset, G_kwargs: dict, D_kwargs: dict, G_opt_kwargs: dict,
                         D_opt_kwargs: dict, loss_kwargs: dict, augment_kwargs: dict | None = None,
                         ema_kimg: float = 10.0, ema_rampup: float | None = 0.05, G_reg_interval: int = 4,
                         D_reg_interval: int = 16, transfer_kwargs: dict | None = None, grid_size=(8, 4),
                         grid_seed: int = 0) -> Stage:
    from training.networks_stylegan2 import Discriminator, Generator
    common = dict(c_dim=dataset.label_dim, img_resolution=dataset.resolution, img_channels=dataset.num_channels)
    if transfer_kwargs is not None:
        G, D = _transfer_start(transfer_kwargs["parent"], common, D_kwargs)
        G, D = G.train().to(device), D.train().to(device)
    else:
        G = Generator(**{**G_kwargs, **common}).train().to(device)
        D = Discriminator(**{**D_kwargs, **common}).train().to(device)
    G_ema = copy.deepcopy(G).eval()
    networks = dict(G=G, D=D, G_ema=G_ema)

    augment_pipe, ada = build_augment(augment_kwargs, device)
    if augment_pipe is not None:
        networks["augment_pipe"] = augment_pipe

    loss_kwargs = dict(loss_kwargs)
    G_trainable = list(G.parameters())
    if transfer_kwargs is not None:
        parent = copy.deepcopy(G).eval().requires_grad_(False)
        networks["G_parent"] = parent
        G_trainable = transfer_trainable_params(G, transfer_kwargs["freeze_res"])
        loss_kwargs.update(parent_G=parent, pl_weight=0.0, **_transfer_losses(transfer_kwargs, device))
    loss = StyleGAN2Loss(G, D, stats, augment_pipe=augment_pipe, ada=ada, **loss_kwargs)

    g_reg = G_reg_interval if loss.pl_weight > 0 else None
    G_opt = make_adam(G_trainable, reg_interval=g_reg, **G_opt_kwargs)
    D_opt = make_adam(D.parameters(), reg_interval=D_reg_interval, **D_opt_kwargs)
    phases = [Phase("Gmain", G_trainable, G_opt, 1)]
    if g_reg:
        phases.append(Phase("Greg", G_trainable, G_opt, G_reg_interval))
    phases += [Phase("Dmain", list(D.parameters()), D_opt, 1),
               Phase("Dreg", list(D.parameters()), D_opt, D_reg_interval)]

    cols, rows = grid_size
    grid_z = torch.randn([cols * rows, G.z_dim], generator=torch.Generator().manual_seed(grid_seed)).to(device)
    grid_c = torch.zeros([cols * rows, G.c_dim], device=device)
    reals = _real_grid(dataset, cols * rows, grid_seed)

    @torch.no_grad()
    def snapshot_images() -> dict:
        fakes = image_utils.to_uint8(G_ema(grid_z, grid_c, noise_mode="const"))
        images = {"reals": image_utils.tile(reals, cols)}
        if transfer_kwargs is not None:
            parent_imgs = image_utils.to_uint8(networks["G_parent"](grid_z, grid_c, noise_mode="const"))
            pairs = torch.stack([parent_imgs, fakes], 1).flatten(0, 1)  # parent | child
            images["fakes"] = image_utils.tile(pairs, 2 * max(cols // 2, 1))
        else:
            images["fakes"] = image_utils.tile(fakes, cols)
        return images

    return Stage(networks=networks, phases=phases, loss=loss, ema={"G_ema": "G"}, ema_kimg=ema_kimg,
                 ema_rampup=ema_rampup, augment=ada, status_keys=("Loss/G/loss", "Loss/D/loss"),
                 snapshot_images=snapshot_images,
                 compute_metrics=metrics_hook(image_clips(G_ema), dataset.path, device, dataset.resolution))


# Fake source for the metrics from an image generator: "clips" of independent images (FID only looks at frames),
# one seed per clip so that ranks generating blocks of one sequence agree with a single process.
def image_clips(G):
    @torch.no_grad()
    def fake_clips(num_videos: int, num_frames: int, seed: int, batch_size: int, start: int = 0):
        from training.video_generation import clip_seeds
        device = next(G.parameters()).device
        for offset in range(0, num_videos, batch_size):
            seeds = clip_seeds(seed, min(batch_size, num_videos - offset), start + offset)
            z = torch.cat([torch.randn([num_frames, G.z_dim], generator=torch.Generator().manual_seed(s))
                           for s in seeds]).to(device)
            c = torch.zeros([len(z), G.c_dim], device=device)
            images = torch.cat([G(zz, cc, noise_mode="const") for zz, cc in zip(z.split(64), c.split(64))])
            yield image_utils.to_uint8(images).unflatten(0, (len(seeds), num_frames))
    return fake_clips


# The transfer child starts as the parent's G_ema (and its D when the file has one, else a fresh D).
def _transfer_start(parent_path: str, common: dict, D_kwargs: dict):
    from training import checkpoint
    from training.networks_stylegan2 import Discriminator
    nets = checkpoint.load_networks(parent_path)
    G = nets.get("G_ema", nets.get("G"))
    if G is None:
        raise ValueError(f"--transfer-from {parent_path}: the file holds no generator (G_ema or G)")
    if G.img_resolution != common["img_resolution"]:
        raise ValueError(f"--transfer-from {parent_path}: the parent generates {G.img_resolution}px images but "
                         f"the dataset is {common['img_resolution']}px; use --resolution to resize the data")
    D = nets["D"] if "D" in nets else Discriminator(**{**D_kwargs, **common})
    return copy.deepcopy(G), D


def _transfer_losses(transfer_kwargs: dict, device) -> dict:
    out = {}
    if transfer_kwargs.get("perceptual_weight", 0) > 0:
        from training.perceptual import load_lpips
        out["perceptual"] = load_lpips("vgg", path=transfer_kwargs.get("lpips_path"), device=device)
        out["perceptual_weight"] = transfer_kwargs["perceptual_weight"]
    if transfer_kwargs.get("identity_weight", 0) > 0:
        from training.perceptual import IdentityLoss, load_arcface
        out["identity"] = IdentityLoss(load_arcface(transfer_kwargs.get("arcface_path"), device=device))
        out["identity_weight"] = transfer_kwargs["identity_weight"]
    return out
