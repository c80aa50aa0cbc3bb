"""Peer of `mosaic-serve` for Cluster/bench/serve.sh: the same API in Python — Starlette on
uvicorn (one worker process, like one Mosaic serving shard), feeds and pin embeddings loaded
from the same published HDF5 runs with h5py, the same session re-rank in numpy.

    python serve_peer.py FEEDS_ROOT WORLD_ROOT PORT [EVENTS_LOG]

POST /v1/events validates a batch like Mosaic and appends it to EVENTS_LOG (CSV) with one
os.fsync per request before answering (durable, no group commit).
"""
import glob
import json
import os
import sys
import time

import h5py
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

feeds_root, world_root, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
events_log = open(sys.argv[4] if len(sys.argv) > 4 else os.devnull, "ab")
next_seq = 1
run = os.path.realpath(os.path.join(feeds_root, "current"))
run_id = json.load(open(os.path.join(run, "MANIFEST.json")))["runID"]
feeds = {}
for path in sorted(glob.glob(os.path.join(run, "feeds", "*.h5"))):
    with h5py.File(path, "r") as f:
        users, pins = f["user_id"][:], f["pin_id"][:]
        for u, row in zip(users, pins):
            feeds[int(u)] = [int(p) for p in row if p >= 0]
wanted = set(p for feed in feeds.values() for p in feed)
emb = {}
world = os.path.realpath(os.path.join(world_root, "current"))
for path in sorted(glob.glob(os.path.join(world, "pins", "*.h5"))):
    with h5py.File(path, "r") as f:
        ids, e = f["pins/pin_id"][:], f["pins/embedding"][:]
        e = e.reshape(len(ids), -1)
        for i, p in enumerate(ids):
            if int(p) in wanted:
                emb[int(p)] = e[i]
TYPES = {"impression", "closeup", "click", "save", "hide"}


def error(status, message):
    return JSONResponse({"error": {"message": message}}, status_code=status)


def parse(request):
    text = request.path_params["user"]
    try:
        user = int(text)
    except ValueError:
        return None, None, error(400, f"user id '{text}' is not an integer")
    k = 20
    if "k" in request.query_params:
        try:
            k = int(request.query_params["k"])
        except ValueError:
            k = 0
        if not 1 <= k <= 500:
            return None, None, error(400, f"k '{request.query_params['k']}' must be an integer in 1…500")
    if user not in feeds:
        return None, None, error(404, f"user {user} has no precomputed feed in run {run_id}")
    return user, k, None


def cosine(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


async def get_feed(request: Request):
    user, k, err = parse(request)
    if err:
        return err
    return JSONResponse({"user": user, "run": run_id, "pins": feeds[user][:k]})


async def post_feed(request: Request):
    user, k, err = parse(request)
    if err:
        return err
    try:
        events = (await request.json())["events"]
        session = [(int(e["pin"]), str(e["type"])) for e in events]
    except Exception as e:  # noqa: BLE001
        return error(400, f"bad body: {e}")
    if len(session) > 1000:
        return error(400, f"{len(session)} session events; at most 1000 per request")
    for i, (_, t) in enumerate(session):
        if t not in TYPES:
            return error(400, f"events[{i}].type '{t}' is not one of {', '.join(sorted(TYPES))}")
    met = {p for p, _ in session}
    engaged = [emb[p] for p, t in session if t in ("closeup", "click", "save") and p in emb]
    hidden = [emb[p] for p, t in session if t == "hide" and p in emb]
    interest = np.mean(engaged, axis=0) if engaged else None
    dislike = np.mean(hidden, axis=0) if hidden else None
    feed = feeds[user]
    n = max(1, len(feed))
    scored = []
    for rank, pin in enumerate(feed):
        if pin in met:
            continue
        score = -rank / n
        e = emb.get(pin)
        if e is not None:
            if interest is not None:
                score += 0.5 * cosine(e, interest)
            if dislike is not None:
                score -= 0.5 * cosine(e, dislike)
        scored.append((-score, rank, pin))
    scored.sort()
    return JSONResponse({"user": user, "run": run_id, "pins": [p for _, _, p in scored[:k]]})


SURFACES = ["home", "related", "search", "board"]


async def post_events(request: Request):
    global next_seq
    try:
        events = (await request.json())["events"]
        assert isinstance(events, list) and 0 < len(events) <= 1000
    except Exception as e:  # noqa: BLE001
        return error(400, f"bad body: {e}")
    lines = []
    for i, e in enumerate(events):
        user, pin, t = e.get("user"), e.get("pin"), e.get("type")
        if not isinstance(user, int) or user < 0:
            return error(400, f"events[{i}].user: not a non-negative integer")
        if not isinstance(pin, int) or pin < 0:
            return error(400, f"events[{i}].pin: not a non-negative integer")
        if t not in TYPES:
            return error(400, f"events[{i}].type: '{t}' is not one of {', '.join(sorted(TYPES))}")
        ts = e.get("ts", int(time.time() * 1000))
        surface = e.get("surface", "home")
        if surface not in SURFACES:
            return error(400, f"events[{i}].surface: '{surface}' is not one of {', '.join(SURFACES)}")
        lines.append(f"{next_seq + i},{user},{pin},{t},{ts},{e.get('position', 0)},{surface},{e.get('session', 0)}\n")
    first = next_seq
    next_seq += len(lines)
    events_log.write("".join(lines).encode())
    events_log.flush()
    os.fsync(events_log.fileno())
    return JSONResponse({"accepted": len(lines), "first_seq": first, "last_seq": next_seq - 1})


app = Starlette(routes=[Route("/v1/feed/{user}", get_feed, methods=["GET"]),
                        Route("/v1/feed/{user}", post_feed, methods=["POST"]),
                        Route("/v1/events", post_events, methods=["POST"])])
print(f"peer: {len(feeds)} users, {len(emb)} pins, run {run_id}", file=sys.stderr, flush=True)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
