#!/usr/bin/env python3
"""Peer for `mosaic-bench graph`: the same generated bipartite graph size in numpy/scipy.sparse.

Builds CSR for both sides with scipy.sparse (duplicates merged), then runs vectorised random
walks with restart (pin -> board -> pin) from every pin, numpy arrays of all walkers at once,
counts (start, visited) pairs with np.unique and keeps the top-T per start pin.
Prints one line: PEER key=value ...
Distribution: pin = floor(P*u1), board = floor(B*u2^2) (numpy RNG, not the Swift stream).
"""
import argparse, resource, time
import numpy as np
import scipy.sparse as sp

a = argparse.ArgumentParser()
a.add_argument("--pins", type=int, required=True)
a.add_argument("--boards", type=int, required=True)
a.add_argument("--edges", type=int, required=True)
a.add_argument("--walks", type=int, default=2)
a.add_argument("--restart", type=float, default=0.5)
a.add_argument("--max-steps", type=int, default=10)
a.add_argument("--top", type=int, default=10)
a.add_argument("--seed", type=int, default=17)
o = a.parse_args()
rng = np.random.default_rng(o.seed)
pins = (o.pins * rng.random(o.edges)).astype(np.int64)
u = rng.random(o.edges)
boards = (o.boards * u * u).astype(np.int64)
del u
t0 = time.perf_counter()
ones = np.ones(o.edges, dtype=np.int8)
pin_side = sp.csr_matrix((ones, (pins, boards)), shape=(o.pins, o.boards))
pin_side.sum_duplicates(); pin_side.sort_indices()
board_side = pin_side.T.tocsr(); board_side.sort_indices()
build = time.perf_counter() - t0
del pins, boards, ones
edges = pin_side.nnz

t1 = time.perf_counter()
po, pn = pin_side.indptr, pin_side.indices.astype(np.int64)
bo, bn = board_side.indptr, board_side.indices.astype(np.int64)
pdeg = np.diff(po)
start = np.repeat(np.arange(o.pins, dtype=np.int64), o.walks)
cur = start.copy()
alive = pdeg[cur] > 0
steps = 0
vs, vp = [], []
for s in range(o.max_steps // 2):
    idx = np.nonzero(alive)[0]
    if idx.size == 0:
        break
    c = cur[idx]
    b = pn[po[c] + (rng.random(idx.size) * pdeg[c]).astype(np.int64)]
    bdeg = bo[b + 1] - bo[b]
    p = bn[bo[b] + (rng.random(idx.size) * bdeg).astype(np.int64)]
    steps += 2 * idx.size
    cur[idx] = p
    vs.append(start[idx]); vp.append(p)
    stop = (rng.random(idx.size) < o.restart) | (pdeg[p] == 0)
    alive[idx[stop]] = False
keys = np.concatenate(vs) * o.pins + np.concatenate(vp)
del vs, vp
k, cnt = np.unique(keys, return_counts=True)
s_ids, v_ids = k // o.pins, k % o.pins
keep = s_ids != v_ids
s_ids, v_ids, cnt = s_ids[keep], v_ids[keep], cnt[keep]
order = np.lexsort((v_ids, -cnt, s_ids))
s_sorted = s_ids[order]
first = np.searchsorted(s_sorted, s_sorted, side="left")
rank_in_group = np.arange(s_sorted.size) - first
top = order[rank_in_group < o.top]
walk = time.perf_counter() - t1
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"PEER edges={edges} build_seconds={build:.3f} walk_seconds={walk:.3f} steps={steps} kept={top.size} maxrss_mib={rss:.1f}")
