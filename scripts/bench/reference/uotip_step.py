#!/usr/bin/env python3
"""The quickstart's UOTIP training iteration written in PyTorch: the reference that
`monge bench train-step` (scripts/bench/train_step.lua) times beside monge's C++ step.

One iteration is what monge's trainer does (host/train/trainer.cpp, plugins/solvers/uotip):
draw batch indices into the clean and the measured pools, degrade the measured batch
(y = blur(x) + sigma e), update the map T on  mean[tau c(y, T(y)) - v(T(y))], update the
potential v on  mean exp(-tau c(y, T(y)) + v(T(y))) - 1 + mean exp(-v(x)) - 1
+ r1/2 mean |grad v(x)|^2  (T(y) from the updated map), move the map's average (EMA with
warm-up), and read the logged statistics. Networks: plugins/networks/unet (channels 16, depth 2,
residual, SiLU) and plugins/networks/potential (channels 16, depth 3, leaky ReLU 0.2). Cost:
the Gaussian likelihood cost of gaussian_blur (13 taps, sigma 1.5, reflect) with sigma 0.05,
which is ||A(x) - y||^2, plus 1.1 ||y - x||^2 (the blur's lift is the identity).

    /usr/bin/python3 uotip_step.py --threads N [--iters 60] [--warmup 5] [--batch 64]
                                   [--check DIR] [--tolerance 1e-4] [--data DIR]

--check DIR reads what `monge.train{ dump_first_step = DIR }` wrote (index.json, tensors.bin:
the initial weights of the map and the potential, the first batch (y, x) and the losses of the
first step), runs one step from those weights on that batch, compares the losses and exits with
code 1 when one differs by more than the relative tolerance. The timed run then starts from the
same weights. The last line printed is JSON: {"its_per_second": ..., "cpu_seconds_per_iter": ...
(process CPU time, all threads), "check": {...}, ...}.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def width(channels, level):
    """Width at level l: channels * 2^l, capped at 1024 (never below channels)."""
    cap, w = max(channels, 1024), channels
    for _ in range(level):
        if w >= cap:
            break
        w = min(cap, 2 * w)
    return w


def conv3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class UNet(nn.Module):
    """plugins/networks/unet, residual, SiLU; parameter names as LibTorch registers them."""

    def __init__(self, channels=16, depth=2, in_channels=1):
        super().__init__()
        self.depth = depth
        self.stem = conv3(in_channels, width(channels, 0))
        for l in range(depth):
            w = width(channels, l)
            setattr(self, f"enc{l}_conv1", conv3(w, w))
            setattr(self, f"enc{l}_conv2", conv3(w, w))
            setattr(self, f"down{l}", conv3(w, width(channels, l + 1), 2))
        wb = width(channels, depth)
        self.mid_conv1, self.mid_conv2 = conv3(wb, wb), conv3(wb, wb)
        for l in reversed(range(depth)):
            w = width(channels, l)
            setattr(self, f"up{l}", conv3(width(channels, l + 1), w))
            setattr(self, f"dec{l}_conv1", conv3(2 * w, w))
            setattr(self, f"dec{l}_conv2", conv3(w, w))
        self.out = nn.Conv2d(width(channels, 0), in_channels, 1)
        with torch.no_grad():
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        m = 1 << self.depth
        ph, pw = (m - h % m) % m, (m - w % m) % m
        inp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        t = self.stem(inp)
        skips = []
        for l in range(self.depth):
            t = F.silu(getattr(self, f"enc{l}_conv1")(t))
            t = F.silu(getattr(self, f"enc{l}_conv2")(t))
            skips.append(t)
            t = getattr(self, f"down{l}")(t)
        t = F.silu(self.mid_conv1(t))
        t = F.silu(self.mid_conv2(t))
        for l in reversed(range(self.depth)):
            t = F.interpolate(t, scale_factor=2.0, mode="nearest")
            t = getattr(self, f"up{l}")(t)
            t = torch.cat([skips[l], t], 1)
            t = F.silu(getattr(self, f"dec{l}_conv1")(t))
            t = F.silu(getattr(self, f"dec{l}_conv2")(t))
        t = self.out(t) + inp
        return t[:, :, :h, :w] if ph or pw else t


class Potential(nn.Module):
    """plugins/networks/potential, leaky ReLU 0.2; one real per sample."""

    def __init__(self, channels=16, depth=3, in_channels=1):
        super().__init__()
        self.depth = depth
        self.stem = conv3(in_channels, width(channels, 0))
        for l in range(depth):
            w = width(channels, l)
            setattr(self, f"stage{l}_conv", conv3(w, w))
            setattr(self, f"stage{l}_down", conv3(w, width(channels, l + 1), 2))
        self.head = nn.Linear(width(channels, depth), 1)

    def forward(self, x):
        t = F.leaky_relu(self.stem(x), 0.2)
        for l in range(self.depth):
            t = F.leaky_relu(getattr(self, f"stage{l}_conv")(t), 0.2)
            t = F.leaky_relu(getattr(self, f"stage{l}_down")(t), 0.2)
        return self.head(t.mean((2, 3))).squeeze(1)


class GaussianBlur:
    """plugins/operators/gaussian_blur: normalised sampled Gaussian, two 1-D depthwise passes, each
    axis padded (reflect) right before its pass."""

    def __init__(self, size=13, sigma=1.5, channels=1):
        r = size // 2
        taps = [math.exp(-((i - r) ** 2) / (2 * sigma * sigma)) for i in range(size)]
        g = torch.tensor(taps, dtype=torch.float64)
        g = (g / g.sum()).float()
        self.r, self.channels = r, channels
        self.vertical = g.view(1, 1, size, 1).expand(channels, 1, size, 1).contiguous()
        self.horizontal = g.view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()

    def __call__(self, x):
        r = self.r
        t = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), self.vertical, groups=self.channels)
        return F.conv2d(F.pad(t, (r, r, 0, 0), mode="reflect"), self.horizontal, groups=self.channels)


class UotipStep:
    """plugins/solvers/uotip with psi1 = psi2 = kl, Adam (betas 0.5, 0.9), EMA 0.999 with warm-up."""

    def __init__(self, tmap, potential, blur, tau=0.1, r1=0.2, noise_sigma=0.05, lam=1.1,
                 lr_map=1e-4, lr_potential=5e-5, ema=0.999, max_exponent=30.0):
        self.map, self.potential, self.blur = tmap, potential, blur
        self.tau, self.r1, self.sigma, self.lam = tau, r1, noise_sigma, lam
        self.ema_decay, self.max_exponent = ema, max_exponent
        self.opt_map = torch.optim.Adam(tmap.parameters(), lr=lr_map, betas=(0.5, 0.9))
        self.opt_potential = torch.optim.Adam(potential.parameters(), lr=lr_potential, betas=(0.5, 0.9))
        self.ema = [p.detach().clone() for p in tmap.parameters()]
        self.steps = 0

    def cost(self, y, x):
        """c(y, x) = 2 var (nll(y | A(x)) - nll(y | y)) + lam ||Q(y) - x||^2 per sample; the Gaussian
        likelihood term is ||A(x) - y||^2."""
        n = x.shape[0]
        likelihood = (self.blur(x) - y).square().reshape(n, -1).sum(1)
        quadratic = (y - x).square().reshape(n, -1).sum(1)
        return likelihood + self.lam * quadratic

    def conjugate(self, t):
        """KL: exp(t) - 1, clamped at max_exponent; returns the value and how many were clamped."""
        return torch.exp(torch.clamp_max(t, self.max_exponent)) - 1, t.gt(self.max_exponent).sum()

    def step(self, y, x):
        q = y  # the blur's lift is the identity
        # 1. Map step.
        ty = self.map(q)
        cost = self.tau * self.cost(y, ty)
        loss_map = (cost - self.potential(ty)).mean()
        self.opt_map.zero_grad()
        loss_map.backward()
        self.opt_map.step()
        # 2. Potential step, T(y) from the updated map.
        with torch.no_grad():
            ty_new = self.map(q)
            cost_new = self.tau * self.cost(y, ty_new)
        v_fake = self.potential(ty_new)
        x_real = x.detach().requires_grad_(self.r1 > 0)
        v_real = self.potential(x_real)
        fake, clamped_fake = self.conjugate(-cost_new + v_fake)
        real, clamped_real = self.conjugate(-v_real)
        loss_potential = fake.mean() + real.mean()
        (grad,) = torch.autograd.grad(v_real.sum(), x_real, retain_graph=True, create_graph=True)
        penalty = 0.5 * self.r1 * grad.reshape(grad.shape[0], -1).square().sum(1).mean()
        self.opt_potential.zero_grad()
        (loss_potential + penalty).backward()
        self.opt_potential.step()
        # 3. Moving average of the map.
        t = float(self.steps)
        decay = min(self.ema_decay, (1 + t) / (10 + t))
        with torch.no_grad():
            for avg, p in zip(self.ema, self.map.parameters()):
                avg.mul_(decay).add_(p, alpha=1 - decay)
        self.steps += 1
        # The statistics monge's trainer logs each step.
        return {
            "loss_map": loss_map.item(), "cost": cost.mean().item(), "r1": penalty.item(),
            "loss_potential": loss_potential.item(), "v_fake": v_fake.mean().item(),
            "v_real": v_real.mean().item(), "clamped": int(clamped_fake.item() + clamped_real.item()),
        }

    def degrade(self, x, generator):
        with torch.no_grad():
            ax = self.blur(x)
            return ax + self.sigma * torch.randn(ax.shape, generator=generator)


def read_idx_images(path, limit):
    """Fashion-MNIST IDX images as N x 1 x H x W float32 in [-1, 1], like monge.data.fashion_mnist."""
    with gzip.open(path, "rb") as f:
        magic, n, h, w = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            raise SystemExit(f"{path}: not an IDX image file")
        n = min(n, limit)
        raw = torch.frombuffer(bytearray(f.read(n * h * w)), dtype=torch.uint8)
    return raw.reshape(n, 1, h, w).float().div_(127.5).sub_(1.0)


def read_dump(directory):
    """index.json and tensors.bin written by monge.train{ dump_first_step = DIR }."""
    with open(os.path.join(directory, "index.json")) as f:
        index = json.load(f)
    with open(os.path.join(directory, "tensors.bin"), "rb") as f:
        data = bytearray(f.read())
    flat = torch.frombuffer(data, dtype=torch.float32)  # raw little-endian float32, C order
    tensors = {}
    for e in index["tensors"]:
        count = math.prod(e["shape"])
        tensors[e["name"]] = flat[e["offset"]:e["offset"] + count].reshape(e["shape"]).clone()
    return tensors, index["stats"]


def load_weights(module, prefix, tensors):
    mine = dict(module.named_parameters())
    theirs = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if set(mine) != set(theirs):
        raise SystemExit(f"{prefix}: parameters differ from monge's: only here {sorted(set(mine) - set(theirs))}, "
                         f"only in the dump {sorted(set(theirs) - set(mine))}")
    with torch.no_grad():
        for name, p in mine.items():
            if p.shape != theirs[name].shape:
                raise SystemExit(f"{prefix}{name}: shape {list(p.shape)} here, {list(theirs[name].shape)} in the dump")
            p.copy_(theirs[name])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--iters", type=int, default=60, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=5, help="iterations before timing starts")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--pool", type=int, default=8192, help="training images read (even: clean, odd: measured)")
    ap.add_argument("--check", metavar="DIR", help="compare the first step with monge's dump in DIR")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="relative tolerance of the loss check")
    ap.add_argument("--data", default=os.environ.get("MONGE_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    torch.manual_seed(a.seed)
    tmap, potential, blur = UNet(), Potential(), GaussianBlur()
    result = {"threads": torch.get_num_threads(), "batch": a.batch, "torch": torch.__version__}

    if a.check:
        tensors, expected = read_dump(a.check)
        load_weights(tmap, "map/", tensors)
        load_weights(potential, "potential/", tensors)
        y, x = tensors["batch/y"], tensors["batch/x"]
        # The check runs on a copy, so the timed run starts from monge's initial weights too.
        check_map, check_potential = UNet(), Potential()
        check_map.load_state_dict(tmap.state_dict())
        check_potential.load_state_dict(potential.state_dict())
        got = UotipStep(check_map, check_potential, blur).step(y, x)
        diffs = {k: abs(got[k] - expected[k]) / max(abs(expected[k]), 1e-12) for k in ("loss_map", "loss_potential", "r1")}
        worst = max(diffs, key=diffs.get)
        ok = all(math.isfinite(got[k]) for k in diffs) and diffs[worst] <= a.tolerance
        result["check"] = {"ok": ok, "max_relative_difference": diffs[worst], "worst": worst, "tolerance": a.tolerance,
                           "monge": {k: expected[k] for k in diffs}, "pytorch": {k: got[k] for k in diffs}}
        if not ok:
            print(json.dumps(result))
            print(f"uotip_step: loss check FAILED: {worst} differs by {diffs[worst]:.3g} (relative) from monge's, "
                  f"tolerance {a.tolerance:g}", file=sys.stderr)
            return 1

    train = read_idx_images(os.path.join(a.data, "train-images-idx3-ubyte.gz"), a.pool)
    clean, measured = train[0::2].contiguous(), train[1::2].contiguous()
    solver = UotipStep(tmap, potential, blur)
    gen = torch.Generator().manual_seed(a.seed)
    t0 = c0 = None
    for i in range(a.warmup + a.iters):
        if i == a.warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        ix = torch.randint(clean.shape[0], (a.batch,), generator=gen)
        iy = torch.randint(measured.shape[0], (a.batch,), generator=gen)
        x = clean.index_select(0, ix)
        y = solver.degrade(measured.index_select(0, iy), gen)
        stats = solver.step(y, x)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    result.update({"iters": a.iters, "warmup": a.warmup, "seconds": seconds, "its_per_second": a.iters / seconds,
                   "cpu_seconds_per_iter": cpu / a.iters, "last": stats})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
