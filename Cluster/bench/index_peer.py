#!/usr/bin/env python3
"""faiss-cpu peer for `mosaic-bench index` (run by the Swift bench, not by hand).

Reads the bench's HDF5 file (datasets `vectors` (n, d) float32, `queries` (nq, d) float32,
`ground_truth` (nq, k) int64), builds IndexIVFFlat and IndexIVFPQ with the given nlist, m,
k-means iterations and thread count, and prints one JSON object per line:
  {"index": "IVFFlat", "phase": "build", "seconds": ..., "bytes": ...}
  {"index": "IVFFlat", "phase": "search", "nprobe": 8, "recall": ..., "qps": ...}
"""
import argparse, json, sys, time

import faiss
import h5py
import numpy as np


def recall_at_k(labels, gt, k):
    hits = 0
    for row, truth in zip(labels, gt):
        hits += len(set(row[:k].tolist()) & set(truth[:k].tolist()))
    return hits / (len(gt) * k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nprobe", default="1,4,16,64")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    faiss.omp_set_num_threads(a.threads)
    with h5py.File(a.data, "r") as f:
        xb = np.ascontiguousarray(f["vectors"][...], dtype=np.float32)
        xq = np.ascontiguousarray(f["queries"][...], dtype=np.float32)
        gt = f["ground_truth"][...]
    d = xb.shape[1]
    ids = np.arange(xb.shape[0], dtype=np.int64)
    nprobes = [int(p) for p in a.nprobe.split(",")]
    print(json.dumps({"peer": "faiss", "version": faiss.__version__, "threads": a.threads,
                      "simd": faiss.get_compile_options().strip()}), flush=True)
    for kind in ["IVFFlat", "IVFPQ"]:
        quantizer = faiss.IndexFlatL2(d)
        if kind == "IVFFlat":
            index = faiss.IndexIVFFlat(quantizer, d, a.nlist, faiss.METRIC_L2)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, a.nlist, a.m, 8)
            # PQ training: a.iterations per sub-quantiser on at most
            # pq.cp.max_points_per_centroid (256) x ksub (256) = 65536 residuals
            # (IndexIVFPQ::train_encoder_num_vectors), as Mosaic.
            index.pq.cp.niter = a.iterations
            index.pq.cp.seed = a.seed
        index.cp.niter = a.iterations
        index.cp.seed = a.seed
        t0 = time.perf_counter()
        index.train(xb)
        t1 = time.perf_counter()
        index.add_with_ids(xb, ids)
        t2 = time.perf_counter()
        nbytes = int(faiss.serialize_index(index).size)
        print(json.dumps({"index": kind, "phase": "build", "seconds": t2 - t0, "train": t1 - t0,
                          "add": t2 - t1, "bytes": nbytes}), flush=True)
        for nprobe in nprobes:
            index.nprobe = nprobe
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                _, labels = index.search(xq, a.k)
                best = min(best, time.perf_counter() - t0)
            print(json.dumps({"index": kind, "phase": "search", "nprobe": nprobe,
                              "recall": recall_at_k(labels, gt, a.k), "qps": len(xq) / best}), flush=True)
        del index


if __name__ == "__main__":
    sys.exit(main())
