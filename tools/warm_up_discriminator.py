"""Train a snapshot's discriminator alone against its frozen generator, before joint training.

    python tools/warm_up_discriminator.py SNAPSHOT --data DATASET --minibatches 400 -o OUT.safetensors

Why: when the demo model was continued from a warm start (issue 12), the discriminator's logits
on reals and fakes stayed equal and its loss at 2 ln 2 for the whole run: the generator followed
every feature D began to learn within a few minibatches, so G got no training signal. D alone
against the frozen G separates them within ~150 minibatches. The output holds G, G_ema and the
warmed D, for ``stylefa train --init-from OUT.safetensors`` (a slower G, ``--glr``, keeps D
ahead afterwards; see the demo model card).

Non-saturating logistic loss, Adam (the study's D settings: lr 0.0025 * 16/17, betas (0, 0.99),
eps 1e-8), minibatch 16 of x-flipped reals, no R1 (the joint run's lazy R1 takes over), seed 0.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from stylefa.data import FADataset
from stylefa.nets.checkpoint import Provenance, load_networks, read_metadata, save_networks
from stylefa.runtime import tune_cpu_allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("snapshot", help="a training snapshot with G, G_ema and D")
    parser.add_argument("--data", required=True, help="the dataset the snapshot was trained on")
    parser.add_argument("--minibatches", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    nets = load_networks(args.snapshot)
    provenance = read_metadata(args.snapshot)["provenance"]
    D = nets["D"].train().requires_grad_(True)
    G = nets["G"].eval().requires_grad_(False)
    dataset = FADataset(args.data, split="train", xflip=True)
    optimizer = torch.optim.Adam(D.parameters(), lr=0.0025 * 16 / 17, betas=(0.0, 0.99), eps=1e-8)
    rng = np.random.default_rng(0)
    losses = []
    for step in range(args.minibatches):
        reals = torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in rng.integers(0, len(dataset), 16)]).float()
        with torch.no_grad():
            fakes = G(torch.randn(16, G.z_dim), None)
        loss = F.softplus(D(fakes, None)).mean() + F.softplus(-D(reals, None)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            print(f"minibatch {step + 1}: D loss {np.mean(losses[-50:]):.4f} (2 ln 2 = 1.386 is chance)", flush=True)
    extra = dict(provenance.extra)
    extra["discriminator_warm_up"] = {"minibatches": args.minibatches, "final_d_loss": float(np.mean(losses[-50:]))}
    save_networks(args.output, G=nets["G"], G_ema=nets["G_ema"], D=D.requires_grad_(False),
                  provenance=Provenance(source="train", kimg=provenance.kimg, extra=extra))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
