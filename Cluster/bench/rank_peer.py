#!/usr/bin/env python3
"""PyTorch CPU peer of `mosaic-bench rank`'s training measurement: the same ranker as the Swift
`RankerModel` in the benchmark — hashed embedding table (rows × 16) over 7 fields, 3 dense
features, 32-d content, DIN (1-head target attention over the last 20 events) and SIM's ESU
(2-head target attention over K = 50 GSU events), sequence events encoded as pin embedding +
event-type + time-bucket embeddings, DCN-v2 (2 full-rank cross layers) → dropout → MMoE (3
experts 128-64, towers 32-1 for 2 tasks) + the training-only position tower (one-hot 32 → 8 →
ReLU → 2) — with the same batch, per-task BCE, Adam for dense parameters and SparseAdam for the
table, timed the same way (forward + backward + update; data generated before timing; fastest
of `--repeats` rounds). Slot masks keep the Swift batches' share of real events. Prints
PEER_EPS=<examples/s>."""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=1024)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--table-rows", type=int, default=1 << 15)
p.add_argument("--fields", type=int, default=7)
p.add_argument("--dim", type=int, default=16)
p.add_argument("--dense", type=int, default=3)
p.add_argument("--content", type=int, default=32)
p.add_argument("--short", type=int, default=20)
p.add_argument("--sim-k", type=int, default=50)
p.add_argument("--sim-heads", type=int, default=2)
p.add_argument("--time-buckets", type=int, default=16)
p.add_argument("--position-buckets", type=int, default=32)
p.add_argument("--dropout", type=float, default=0.1)
p.add_argument("--short-fill", type=float, default=1.0, help="share of real (unmasked) short-sequence slots")
p.add_argument("--long-fill", type=float, default=1.0, help="share of real (unmasked) GSU slots")
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
NF, D, ND, NC = args.fields, args.dim, args.dense, args.content
W = NF * D + ND + NC + (D if args.sim_k else 0) + (D if args.short else 0)
TASKS = 2


class TargetAttention(nn.Module):
    """Query (B, D) over keys = values (B, T, D) with mask (B, T); no biases (like the Swift layer)."""

    def __init__(self, heads):
        super().__init__()
        self.h = heads
        self.wq = nn.Linear(D, heads * D, bias=False)
        self.wk = nn.Linear(D, heads * D, bias=False)
        self.wv = nn.Linear(D, heads * D, bias=False)
        self.wo = nn.Linear(heads * D, D, bias=False)

    def forward(self, q, kv, mask):
        b, t, _ = kv.shape
        q = self.wq(q).view(b, self.h, 1, D)
        k = self.wk(kv).view(b, t, self.h, D).transpose(1, 2)
        v = self.wv(kv).view(b, t, self.h, D).transpose(1, 2)
        s = (q @ k.transpose(2, 3)).squeeze(2) / math.sqrt(D)  # (B, h, T)
        s = s.masked_fill(~mask.unsqueeze(1), float("-inf"))
        a = torch.softmax(s, dim=2)
        a = torch.nan_to_num(a, nan=0.0)  # all-padding rows: zero context
        ctx = (a.unsqueeze(2) @ v).squeeze(2).reshape(b, self.h * D)
        return self.wo(ctx)


class Ranker(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(args.table_rows, D, sparse=True)
        nn.init.normal_(self.table.weight, std=0.01)
        self.type_emb = nn.Parameter(torch.randn(5, D) * 0.01)
        self.time_emb = nn.Parameter(torch.randn(args.time_buckets, D) * 0.01)
        self.esu = TargetAttention(args.sim_heads) if args.sim_k else None
        self.din = TargetAttention(1) if args.short else None
        self.cross = nn.ModuleList([nn.Linear(W, W) for _ in range(2)])
        self.drop = nn.Dropout(args.dropout)
        self.experts = nn.ModuleList(
            [nn.Sequential(nn.Linear(W, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU()) for _ in range(3)])
        self.gates = nn.ModuleList([nn.Linear(W, 3) for _ in range(TASKS)])
        self.towers = nn.ModuleList([nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)) for _ in range(TASKS)])
        self.position = nn.Sequential(nn.Linear(args.position_buckets, 8), nn.ReLU(), nn.Linear(8, TASKS))

    def encode(self, rows, types, buckets, mask):
        e = self.table(rows) + self.type_emb[types] + self.time_emb[buckets]
        return e * mask.unsqueeze(2)

    def forward(self, b):
        n = b["rows"].shape[0]
        e = self.table(b["rows"])  # (B, F, D)
        parts = [e.reshape(n, NF * D), b["dense"], b["content"]]
        query = e[:, 1]
        if self.esu is not None:
            parts.append(self.esu(query, self.encode(*b["long"]), b["long"][3]))
        if self.din is not None:
            parts.append(self.din(query, self.encode(*b["short"]), b["short"][3]))
        x0 = torch.cat(parts, dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        x = self.drop(x)
        ex = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, 64)
        pos = self.position(F.one_hot(b["positions"], args.position_buckets).float())
        outs = []
        for k, (gate, tower) in enumerate(zip(self.gates, self.towers)):
            g = torch.softmax(gate(x), dim=1).unsqueeze(2)
            outs.append(tower((g * ex).sum(dim=1)).squeeze(1) + pos[:, k])
        return outs


model = Ranker()
dense_params = [p for n, p in model.named_parameters() if not n.startswith("table")]
opt = torch.optim.Adam(dense_params, lr=1e-3)
sparse_opt = torch.optim.SparseAdam([model.table.weight], lr=1e-3)
rng = np.random.default_rng(7)
B = args.batch


def slots(t, fill):
    rows = torch.from_numpy(rng.integers(0, args.table_rows, size=(B, t)))
    types = torch.from_numpy(rng.integers(0, 5, size=(B, t)))
    buckets = torch.from_numpy(rng.integers(0, args.time_buckets, size=(B, t)))
    mask = torch.from_numpy(rng.random((B, t)) < fill)
    return (rows, types, buckets, mask)


batches = []
for _ in range(4):
    batches.append({
        "rows": torch.from_numpy(rng.integers(0, args.table_rows, size=(B, NF))),
        "dense": torch.randn(B, ND), "content": torch.randn(B, NC),
        "positions": torch.from_numpy(rng.integers(0, args.position_buckets, size=B)),
        "short": slots(args.short, args.short_fill), "long": slots(args.sim_k, args.long_fill),
        "labels": [torch.randint(0, 2, (B,)).float() for _ in range(TASKS)],
    })
loss_fn = nn.BCEWithLogitsLoss()


def step(b):
    opt.zero_grad(set_to_none=True)
    sparse_opt.zero_grad(set_to_none=True)
    outs = model(b)
    loss = sum(loss_fn(o, y) for o, y in zip(outs, b["labels"]))
    loss.backward()
    opt.step()
    sparse_opt.step()
    return loss.item()


model.train()
for s in range(args.warmup):
    step(batches[s % 4])
elapsed = float("inf")
for _ in range(args.repeats):
    t0 = time.perf_counter()
    for s in range(args.steps):
        step(batches[s % 4])
    elapsed = min(elapsed, time.perf_counter() - t0)
print(f"peer: torch {torch.__version__}, {torch.get_num_threads()} thread(s), input width {W}, "
      f"fastest of {args.repeats} rounds: {args.steps} steps of {B} in {elapsed:.3f} s")
print(f"PEER_EPS={B * args.steps / elapsed}")
