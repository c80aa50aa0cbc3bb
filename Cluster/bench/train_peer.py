#!/usr/bin/env python3
"""PyTorch CPU peer of `mosaic-bench train`: the same DCN-v2 + MMoE architecture, batch and
optimizers (Adam for dense parameters, SparseAdam for embedding rows), timed the same way
(forward + backward + update; data generated before timing). Prints PEER_EPS=<examples/s>."""
import argparse
import time

import numpy as np
import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=512)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--table-rows", type=int, default=100_000)
p.add_argument("--fields", type=int, default=20)
p.add_argument("--dim", type=int, default=16)
p.add_argument("--dense", type=int, default=16)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
F, D, ND = args.fields, args.dim, args.dense
W = F * D + ND


class CrossMMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(args.table_rows, D, sparse=True)
        nn.init.normal_(self.table.weight, std=0.01)
        self.cross = nn.ModuleList([nn.Linear(W, W) for _ in range(3)])
        self.experts = nn.ModuleList(
            [nn.Sequential(nn.Linear(W, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU()) for _ in range(3)])
        self.gates = nn.ModuleList([nn.Linear(W, 3) for _ in range(2)])
        self.towers = nn.ModuleList([nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1)) for _ in range(2)])

    def forward(self, ids, dense):
        x0 = torch.cat([self.table(ids).reshape(ids.shape[0], F * D), dense], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        e = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, 128)
        outs = []
        for gate, tower in zip(self.gates, self.towers):
            g = torch.softmax(gate(x), dim=1).unsqueeze(2)
            outs.append(tower((g * e).sum(dim=1)).squeeze(1))
        return outs


model = CrossMMoE()
dense_params = [p for n, p in model.named_parameters() if not n.startswith("table")]
opt = torch.optim.Adam(dense_params, lr=1e-3)
sparse_opt = torch.optim.SparseAdam([model.table.weight], lr=1e-3)
rng = np.random.default_rng(7)
batches = []
for _ in range(4):
    ids = torch.from_numpy((rng.zipf(1.05, size=(args.batch, F)) * 2654435761 % args.table_rows).astype(np.int64))
    dense = torch.randn(args.batch, ND)
    labels = [torch.randint(0, 2, (args.batch,)).float() for _ in range(2)]
    batches.append((ids, dense, labels))
loss_fn = nn.BCEWithLogitsLoss()


def step(b):
    ids, dense, labels = b
    opt.zero_grad(set_to_none=True)
    sparse_opt.zero_grad(set_to_none=True)
    outs = model(ids, dense)
    loss = sum(loss_fn(o, y) for o, y in zip(outs, labels))
    loss.backward()
    opt.step()
    sparse_opt.step()
    return loss.item()


for s in range(args.warmup):
    step(batches[s % 4])
elapsed = float("inf")
for _ in range(args.repeats):  # fastest round, like the Swift side
    t0 = time.perf_counter()
    for s in range(args.steps):
        step(batches[s % 4])
    elapsed = min(elapsed, time.perf_counter() - t0)
print(f"peer: torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
      f"fastest of {args.repeats} rounds: {args.steps} steps in {elapsed:.3f} s")
print(f"PEER_EPS={args.batch * args.steps / elapsed}")
