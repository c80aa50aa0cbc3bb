#!/usr/bin/env python3
"""Peer for `mosaic-bench data`: reads an events CSV with the standard library only
(csv.reader) and validates every row the way `mosaic ingest` does on its hot path: column
count, integer ids/timestamps/positions, event type and surface in their sets, probabilities
empty or in [0, 1]. Counts accepted and rejected rows and drops duplicate event ids.
No sorting, routing or writing: it is a lower bound on the work of a single-process importer.
Prints one line: PEER rows=<n> accepted=<n> rejected=<n> duplicates=<n> seconds=<s> cpu_seconds=<s>"""
import csv
import math
import sys
import time

TYPES = {"impression", "closeup", "click", "save", "hide", "skip"}
SURFACES = {"home", "related", "search", "board"}


def main(path):
    t0 = time.perf_counter()
    c0 = time.process_time()
    rows = accepted = rejected = duplicates = 0
    seen = set()
    with open(path, newline="", encoding="utf-8", errors="strict") as f:
        reader = csv.reader(f)
        header = next(reader)
        width = len(header)
        prob_cols = [i for i, name in enumerate(header) if name.startswith("p_")]
        for row in reader:
            if not row:
                continue
            rows += 1
            try:
                if len(row) != width:
                    raise ValueError("wrong_column_count")
                event_id, user, pin = int(row[0]), int(row[1]), int(row[2])
                if event_id < 0 or user < 0 or pin < 0:
                    raise ValueError("out_of_range")
                if row[3] not in TYPES:
                    raise ValueError("unknown_value")
                ts = int(row[4])
                if ts < 0 or ts > 4102444800000:
                    raise ValueError("out_of_range")
                int(row[5])
                if row[6] not in SURFACES:
                    raise ValueError("unknown_value")
                int(row[7])
                for i in prob_cols:
                    if row[i]:
                        p = float(row[i])
                        if not math.isfinite(p) or p < 0 or p > 1:
                            raise ValueError("out_of_range")
            except ValueError:
                rejected += 1
                continue
            if event_id in seen:
                duplicates += 1
                continue
            seen.add(event_id)
            accepted += 1
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(f"PEER rows={rows} accepted={accepted} rejected={rejected} duplicates={duplicates} seconds={seconds:.3f} cpu_seconds={cpu:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
