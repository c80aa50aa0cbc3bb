"""Peer of `mosaic-serve` for Cluster/bench/serve.sh: the same API in Python — Starlette on
uvicorn (one worker process, like one Mosaic serving shard), feeds and pin embeddings loaded
from the same published HDF5 runs with h5py, the same session re-rank in numpy.

    python serve_peer.py FEEDS_ROOT WORLD_ROOT PORT [EVENTS_LOG [RANKER_H5]]

POST /v1/events validates a batch like Mosaic and appends it to EVENTS_LOG (CSV) with one
os.fsync per request before answering (durable, no group commit), and keeps each user's
session (the last 256 events). With RANKER_H5 (the night's `ranker.h5`, a DCN-v2 + MMoE ranker
with Platt calibrators) and a ranked feeds run that stores its candidates' features
(`/ranked/ids`, `dense`, `content`), GET /v1/feed/{user} of a user whose session holds saves,
closeups or clicks re-scores the user's ranked candidates (up to 500) in numpy as Mosaic does:
the session folded into the stored features (FeedFeatures.applySession), the cross network, the
experts, the gates and towers, the calibrators, w_save·P(save) + w_closeup·P(closeup); then the
session re-rank; pins already served in the session leave the feed (like Mosaic without a
cursor). `"items"` carry each pin's score, p_save and p_closeup.
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
events_log = open(sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else os.devnull, "ab")
ranker_path = sys.argv[5] if len(sys.argv) > 5 else None
next_seq = 1
run = os.path.realpath(os.path.join(feeds_root, "current"))
run_id = json.load(open(os.path.join(run, "MANIFEST.json")))["runID"]
feeds = {}
for path in sorted(glob.glob(os.path.join(run, "feeds", "*.h5"))):
    with h5py.File(path, "r") as f:
        users, pins = f["user_id"][:], f["pin_id"][:]
        for u, row in zip(users, pins):
            feeds[int(u)] = [int(p) for p in row if p >= 0]
FIELDS, DENSE = 5, 9
I_ENG, I_SHORT, I_CAT = 1, 7, 8  # log_user_engagements, short_term_cosine, category_share
ranked = {}  # user → (pins (n,), ids (n, 5), dense (n, 9), content (n, d))
for path in sorted(glob.glob(os.path.join(run, "feeds", "*.h5"))):
    with h5py.File(path, "r") as f:
        if "ranked" not in f or "ids" not in f["ranked"]:
            continue
        g = f["ranked"]
        users, offsets, pins = f["user_id"][:], g["offsets"][:], g["pin_id"][:]
        ids, dense = g["ids"][:].reshape(-1, FIELDS), g["dense"][:].reshape(len(pins), -1)
        cpins, content = g["content_pin_id"][:], g["content"][:]
        content = content.reshape(len(cpins), -1)
        crow = {int(p): i for i, p in enumerate(cpins)}
        for i, u in enumerate(users):
            a, b = int(offsets[i]), int(offsets[i + 1])
            rows = np.array([crow[int(p)] for p in pins[a:b]], dtype=np.int64)
            ranked[int(u)] = (pins[a:b].copy(), ids[a:b].copy(), dense[a:b].astype(np.float32),
                              content[rows].astype(np.float32))
wanted = set(p for feed in feeds.values() for p in feed) | set(
    int(p) for r in ranked.values() for p in r[0])
emb, pin_category = {}, {}
world = os.path.realpath(os.path.join(world_root, "current"))
for path in sorted(glob.glob(os.path.join(world, "pins", "*.h5"))):
    with h5py.File(path, "r") as f:
        ids, e = f["pins/pin_id"][:], f["pins/embedding"][:]
        e = e.reshape(len(ids), -1)
        cat = f["pins/category"][:]
        for i, p in enumerate(ids):
            if int(p) in wanted:
                emb[int(p)] = e[i]
                pin_category[int(p)] = int(cat[i])
TYPES = {"impression", "closeup", "click", "save", "hide"}
ENGAGED = ("closeup", "click", "save")


def splitmix_rows(ids, salt, rows):
    """EmbeddingTable.row(forID:salt:): the hashed table row of each id (uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.int64).view(np.uint64) + np.uint64(salt) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z % np.uint64(rows)).astype(np.int64)


class Ranker:
    """The saved DCN-v2 + MMoE feed ranker (full-rank cross layers, ReLU experts, softmax gates,
    ReLU towers) and its Platt calibrators, forward only in numpy (float32)."""

    def __init__(self, path):
        with h5py.File(path, "r") as f:
            self.config = json.loads(f.attrs["ranker_config"])
            params = f["parameters"][:]
            self.table = f["tables/ids/values"][:]
            self.platt = {}
            if "calibration" in f:
                for task, g in f["calibration"].items():
                    assert g.attrs["calibration"] == "platt", "peer: only Platt calibrators"
                    self.platt[task] = (float(g.attrs["platt_a"]), float(g.attrs["platt_b"]))
            layout = f.attrs["layout"]
        c = self.config
        assert c["architecture"] == "dcn-mmoe" and c["crossRank"] == 0 and c["simK"] == 0 and c["shortLength"] == 0
        self.p = {}
        for line in layout.strip().split("\n"):
            name, offset, shape = line.split()
            dims = [int(x) for x in shape.split("x")]
            n = int(np.prod(dims))
            self.p[name] = params[int(offset):int(offset) + n].reshape(dims).astype(np.float32)
        self.tasks = c["tasks"]

    def embed(self, ids):
        """Field embeddings (n, fields·dim) of the rows' field ids."""
        rows = self.table.shape[0]
        cols = [self.table[splitmix_rows(ids[:, j], j, rows) if self.config["hashIDs"] else ids[:, j]]
                for j in range(ids.shape[1])]
        return np.concatenate(cols, axis=1)

    def logits(self, x0):
        p, x = self.p, x0
        for l in range(self.config["crossLayers"]):
            x = x + x0 * (x @ p[f"cross.{l}.weight"] + p[f"cross.{l}.bias"])
        outs = []
        for e in range(self.config["experts"]):
            h = x
            for i in range(len(self.config["expertWidths"])):
                h = np.maximum(h @ p[f"mmoe.expert{e}.{i}.weight"] + p[f"mmoe.expert{e}.{i}.bias"], 0)
            outs.append(h)
        experts = np.stack(outs, axis=1)  # (n, experts, m)
        result = []
        for k in range(len(self.tasks)):
            g = x @ p[f"mmoe.gate{k}.weight"] + p[f"mmoe.gate{k}.bias"]
            g = np.exp(g - g.max(axis=1, keepdims=True))
            g /= g.sum(axis=1, keepdims=True)
            h = np.einsum("ne,nem->nm", g, experts)
            widths = self.config["towerWidths"]
            for i in range(len(widths)):
                h = h @ p[f"mmoe.tower{k}.{i}.weight"] + p[f"mmoe.tower{k}.{i}.bias"]
                if i < len(widths) - 1:
                    h = np.maximum(h, 0)
            result.append(h[:, 0])
        return result

    def score(self, x0):
        """FeedScore.combine: (score, p_save, p_closeup) per row."""
        z = self.logits(x0)
        prob = {}
        for k, task in enumerate(self.tasks):
            a, b = self.platt.get(task, (1.0, 0.0))
            prob[task] = 1 / (1 + np.exp(-(a * z[k].astype(np.float64) + b)))
        ps = prob.get("save", prob[self.tasks[0]]).astype(np.float32)
        pc = prob.get("closeup", prob[self.tasks[0]]).astype(np.float32)
        return ps + pc, ps, pc


ranker = Ranker(ranker_path) if ranker_path and os.path.exists(ranker_path) else None
base_x0 = {}  # user → x0 (n, width) without the session
if ranker is not None:
    for u, (pins, ids, dense, content) in ranked.items():
        base_x0[u] = np.concatenate([ranker.embed(ids), dense, content], axis=1).astype(np.float32)
sessions = {}  # user → {"events": [(pin, type)], "served": set}


def apply_session(u, engaged, short_length=5):
    """FeedFeatures.applySession over the user's stored rows: x0 with the session's features."""
    pins, ids, dense, content = ranked[u]
    x0 = base_x0[u].copy()
    row = {}
    for i, p in enumerate(pins):
        row.setdefault(int(p), i)
    cats, vecs = [], []
    for p in engaged:
        i = row.get(p)
        if i is not None:
            cats.append(int(ids[i, 0]))
            vecs.append(content[i])
        else:
            cats.append(int(pin_category.get(p, -1)))
    s, off = len(engaged), FIELDS * ranker.config["dim"]
    e = np.maximum(0, np.rint(np.expm1(dense[:, I_ENG].astype(np.float64)))).astype(np.int64)
    in_cat = dense[:, I_CAT].astype(np.float64) * e
    cat_of_row = ids[:, 0]
    added = np.zeros(len(pins), dtype=np.int64)
    for c in cats:
        added += (cat_of_row == c)
    total = e + s
    x0[:, off + I_ENG] = np.log1p(total).astype(np.float32)
    x0[:, off + I_CAT] = ((in_cat + added) / total).astype(np.float32)
    if vecs:
        mean = np.mean(np.stack(vecs), axis=0).astype(np.float32)
        fresh = min(len(vecs), short_length)
        old = np.minimum(np.minimum(e, short_length), short_length - fresh).astype(np.float32)
        nm, nc = np.linalg.norm(mean), np.linalg.norm(content, axis=1)
        cos = np.where(nc * nm > 0, content @ mean / np.maximum(nc * nm, 1e-30), 0).astype(np.float32)
        x0[:, off + I_SHORT] = (old * dense[:, I_SHORT] + fresh * cos) / (old + fresh)
    return x0


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


def rerank(feed, session, k):
    """SessionRerank: −rank/n + 0.5·cos(pin, engaged mean) − 0.5·cos(pin, hidden mean)."""
    met = {p for p, _ in session}
    engaged = [emb[p] for p, t in session if t in ENGAGED and p in emb]
    hidden = [emb[p] for p, t in session if t == "hide" and p in emb]
    interest = np.mean(engaged, axis=0) if engaged else None
    dislike = np.mean(hidden, axis=0) if hidden else None
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
    return [p for _, _, p in scored[:k]]


def rescored(user, engaged):
    """The user's ranked candidates re-scored with the session, best first: [(pin, score, ps, pc)]."""
    if ranker is None or user not in ranked or not engaged:
        return None
    score, ps, pc = ranker.score(apply_session(user, engaged))
    pins = ranked[user][0]
    order = sorted(range(len(pins)), key=lambda i: (-score[i], i))
    return [(int(pins[i]), float(score[i]), float(ps[i]), float(pc[i])) for i in order]


async def get_feed(request: Request):
    user, k, err = parse(request)
    if err:
        return err
    s = sessions.setdefault(user, {"events": [], "served": set()})
    items = rescored(user, [p for p, t in s["events"] if t in ENGAGED])
    if items:
        ranked_pins = rerank([it[0] for it in items], s["events"], len(items))
    elif s["events"]:
        ranked_pins = rerank(feeds[user], s["events"], len(feeds[user]))
    else:
        ranked_pins = feeds[user]
    ranking = [p for p in ranked_pins if p not in s["served"]]
    if not ranking and s["served"]:
        s["served"] = set()
        ranking = ranked_pins
    pins = ranking[:k]
    s["served"].update(pins)
    answer = {"user": user, "run": run_id, "pins": pins}
    if items:
        by = {it[0]: it for it in items}
        answer["items"] = [{"pin": p, "score": by[p][1], "p_save": by[p][2], "p_closeup": by[p][3]} for p in pins]
    return JSONResponse(answer)


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
    items = rescored(user, [p for p, t in session if t in ENGAGED])
    base = [it[0] for it in items] if items else feeds[user]
    pins = rerank(base, session, k)
    answer = {"user": user, "run": run_id, "pins": pins}
    if items:
        by = {it[0]: it for it in items}
        answer["items"] = [{"pin": p, "score": by[p][1], "p_save": by[p][2], "p_closeup": by[p][3]} for p in pins]
    return JSONResponse(answer)


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
    for e in events:
        s = sessions.setdefault(e["user"], {"events": [], "served": set()})
        s["events"].append((e["pin"], e["type"]))
        del s["events"][:-256]
    events_log.write("".join(lines).encode())
    events_log.flush()
    os.fsync(events_log.fileno())
    return JSONResponse({"accepted": len(lines), "first_seq": first, "last_seq": next_seq - 1})


app = Starlette(routes=[Route("/v1/feed/{user}", get_feed, methods=["GET"]),
                        Route("/v1/feed/{user}", post_feed, methods=["POST"]),
                        Route("/v1/events", post_events, methods=["POST"])])
print(f"peer: {len(feeds)} users, {len(emb)} pins, run {run_id}, ranker {ranker_path if ranker else 'none'}, "
      f"{sum(len(r[0]) for r in ranked.values())} ranked candidates with features", file=sys.stderr, flush=True)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
