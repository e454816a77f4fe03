#!/usr/bin/env python
"""FAISS binary index types for guard's radius queries: latency, recall, add time and memory.

This is the measurement behind ``MULTIHASH_FROM``, ``MULTIHASH_TABLES`` and ``MULTIHASH_FLIPS``
in ``guard/index/faiss_binary.py`` (docs/scale.md). guard stores 256-bit mhash16 codes and asks
radius queries at ``MatchSettings.seed_radius`` bits, 32 query codes per call.

Data:

- base: uniformly random 256-bit codes (index sizes given by ``--sizes``);
- queries: stored codes XOR-ed with *real* difference masks. The masks come from synthetic
  references and pirated copies of them (``guard_synth.broadcast``, fingerprinted with mhash16 at 4 fps as
  ``scripts/measure_descriptors.py`` does): each mask is ``copy frame XOR reference frame at
  the same instant``, so both the number of flipped bits and *where* they sit (a logo flips
  bits in one corner, a crop everywhere) are those of real copies. A second, harder query set
  flips k bits at uniformly random positions with k uniform over 0..radius.

Random base codes spread evenly over every hash bucket, which real codes do not: the rows of a
16×16 median hash are often all dark or all bright (sky, a ticker band), so some 16- or 32-bit
substrings are shared by a large share of all frames. A second base, "resampled real", keeps
each 32-bit substring's real distribution: every stored code takes each of its eight 32-bit
pieces from a different real frame of a pool of synthetic broadcasts (hashed at 4 fps). Hash
tables over it have real bucket sizes; its substrings come from a pool of a few thousand frames,
so rare values repeat more than they would in a real catalog (the common ones, which dominate
the cost, are right). A third base is the same with the 256 bits of every code (stored and
query alike) in one fixed random order, so that a hash piece samples pixels all over the frame
instead of two adjacent rows; Hamming distances, hence the exact answers, do not change.

Recall is the fraction of the exact answer (every stored code within the radius, from
``IndexBinaryFlat``) that an index returns. Latency is per batch of 32 queries, one thread,
median over the batches of each batch's best of 3 runs. Memory is the resident-set growth while building (after ``malloc_trim``).

Usage: python scripts/bench_index.py [--sizes 10000,100000,1000000,4000000] [--batches 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from PIL import Image

from guard_synth import broadcast as synth
from guard.decode import GREY_SIZE, FrameBatch
from guard.config import MatchSettings
from guard.fingerprint import Fingerprinter
from guard.index import BruteForceIndex, FaissBinaryIndex
from guard.match import RefFrames, aligned_distances

BITS, BATCH = 256, 32
SIZE, FPS = (320, 180), 15
REF_PHOTOS = synth.PHOTOS[:8]

#: The copy families the difference masks are measured on (frame transform, encoder options).
TRANSFORMS = {
    "re-encode 150 kb/s": (lambda f: f, {"bit_rate": 150_000}),
    "scale 50% + logo": (lambda f: synth.logo(synth.scale(f, 0.5), "tr", 0.12), {}),
    "letterbox 4:3": (lambda f: synth.letterbox(f, (240, 180)), {}),
    "crop 5%": (lambda f: synth.crop(f, 0.05), {}),
}


# --------------------------------------------------------------------------------------------
# Queries


def real_masks(refs: int, seconds: float) -> dict[str, np.ndarray]:
    """XOR masks between copy frames and the reference frames at the same instant, per family."""
    work = Path(tempfile.mkdtemp(prefix="guard-bench-index-"))
    fper = Fingerprinter("mhash16", sample_fps=4.0)
    masks: dict[str, list[np.ndarray]] = {name: [] for name in TRANSFORMS}
    for seed in range(1, refs + 1):
        frames = lambda seed=seed: synth.broadcast(seed, SIZE, FPS, seconds, photos=REF_PHOTOS)  # noqa: E731
        ref_fp = fper.fingerprint_file(synth.make_video(work / f"ref{seed}.mp4", frames(), FPS))
        ref = RefFrames("", 0.0, ref_fp.times, ref_fp.codes)
        for i, (name, (transform, options)) in enumerate(TRANSFORMS.items()):
            path = synth.make_video(work / f"copy{seed}-{i}.mp4", (transform(f) for f in frames()), FPS, **options)
            q = fper.fingerprint_file(path)
            dist, ref_time = aligned_distances(q.times, q.codes, ref, 0.0, 1.0, 0.3)
            ok = dist <= BITS
            ref_index = np.searchsorted(ref.times, ref_time[ok])
            masks[name].append(q.codes[ok] ^ ref.codes[ref_index])
    return {name: np.concatenate(parts) for name, parts in masks.items()}


def real_code_pool(seeds: int, seconds: float) -> np.ndarray:
    """mhash16 codes of synthetic broadcasts sampled at 4 fps (rendered at 4 fps, not encoded)."""
    fper = Fingerprinter("mhash16", sample_fps=4.0)
    codes = []
    for seed in range(1000, 1000 + seeds):
        grey = [np.asarray(Image.fromarray(f).convert("L").resize((GREY_SIZE, GREY_SIZE), Image.BOX))
                for f in synth.broadcast(seed, SIZE, 4.0, seconds)]
        codes.append(fper.hash_batch(FrameBatch(np.arange(len(grey)) / 4.0, np.stack(grey)))[1])
    return np.concatenate(codes)


def resampled_base(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """Codes whose every 32-bit piece comes from a different random code of ``pool``."""
    out = np.empty((n, BITS // 8), dtype=np.uint8)
    for j in range(0, BITS // 8, 4):
        out[:, j : j + 4] = pool[rng.integers(0, len(pool), n), j : j + 4]
    return out


def permute_bits(codes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Codes with their bits reordered (Hamming distances between codes stay the same)."""
    return np.packbits(np.unpackbits(codes, axis=1)[:, order], axis=1)


def bucket_skew(pool: np.ndarray, b: int) -> float:
    """Mean over tables of sum(p²)·2^b: how many times more candidates per probe than random codes."""
    nb = b // 8
    skews = []
    for j in range(0, BITS // 8, nb):
        _, counts = np.unique(pool[:, j : j + nb], axis=0, return_counts=True)
        p = counts / len(pool)
        skews.append(float((p**2).sum() * 2**b))
    return float(np.mean(skews))


def popcount(codes: np.ndarray) -> np.ndarray:
    """Set bits per packed code."""
    return np.unpackbits(codes, axis=-1).sum(axis=-1, dtype=np.int32)


def uniform_masks(rng: np.random.Generator, count: int, radius: int) -> np.ndarray:
    """Masks of k bits at random positions, k uniform over 0..radius."""
    bits = np.zeros((count, BITS), dtype=bool)
    for row, k in zip(bits, rng.integers(0, radius + 1, count)):
        row[rng.choice(BITS, int(k), replace=False)] = True
    return np.packbits(bits, axis=1)


def planted_queries(rng: np.random.Generator, base: np.ndarray, masks: np.ndarray, count: int) -> np.ndarray:
    """Stored codes (drawn at random) XOR masks (drawn at random): one planted neighbour each."""
    stored = base[rng.integers(0, len(base), count)]
    return stored ^ masks[rng.integers(0, len(masks), count)]


# --------------------------------------------------------------------------------------------
# Indexes


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def build(kind: str, params: dict, base: np.ndarray) -> tuple[faiss.IndexBinary, float, float]:
    """Build an index of ``kind`` over ``base``; returns it, add seconds (incl. training), MB."""
    _trim()
    before = _rss_mb()
    started = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexBinaryFlat(BITS)
    elif kind == "multihash":
        index = faiss.IndexBinaryMultiHash(BITS, params["nhash"], params["b"])
    elif kind == "hash":
        index = faiss.IndexBinaryHash(BITS, params["b"])
    elif kind == "ivf":
        nlist = params["nlist"]
        quantizer = faiss.IndexBinaryFlat(BITS)
        index = faiss.IndexBinaryIVF(quantizer, BITS, nlist)
        index.referenced_objects = [quantizer]  # keep the quantizer alive as long as the index
        sample = base[np.random.default_rng(1).permutation(len(base))[: min(len(base), 10 * nlist)]]
        index.train(sample)
    else:
        raise ValueError(kind)
    index.add(base)
    seconds = time.perf_counter() - started
    return index, seconds, _rss_mb() - before


def set_probe(index: faiss.IndexBinary, kind: str, value: int) -> None:
    """nflip for hash indexes, nprobe for IVF."""
    if kind in ("multihash", "hash"):
        index.nflip = value
    elif kind == "ivf":
        index.nprobe = value


def range_search(index: faiss.IndexBinary, radius: int):
    # FAISS binary range search keeps distances strictly below the radius (as guard does).
    def run(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lims, _, ids = index.range_search(queries, radius + 1)
        return lims, ids

    return run


def time_batches(search, queries: np.ndarray, batches: int, repeats: int = 3) -> tuple[float, list]:
    """Milliseconds per batch of 32 (median over the first ``batches`` batches of each batch's best
    of ``repeats`` runs: the machine is shared) and every batch's answer."""
    search(queries[:BATCH])  # warm-up
    times, answers = [], []
    for i in range(0, len(queries), BATCH):
        chunk = np.ascontiguousarray(queries[i : i + BATCH])
        best = float("inf")
        for _ in range(repeats if i // BATCH < batches else 1):
            started = time.perf_counter()
            answer = search(chunk)
            best = min(best, time.perf_counter() - started)
        if i // BATCH < batches:
            times.append(best)
        answers.append(answer)
    return 1000 * float(np.median(times)), answers


def answer_pairs(answers: list) -> set[tuple[int, int]]:
    """(query number, stored id) pairs of a list of per-batch range-search answers."""
    pairs, q0 = set(), 0
    for lims, ids in answers:
        lims = np.asarray(lims, dtype=np.int64)
        counts = np.diff(lims)
        qs = np.repeat(np.arange(len(counts)), counts) + q0
        pairs.update(zip(qs.tolist(), np.asarray(ids, dtype=np.int64).tolist()))
        q0 += len(counts)
    return pairs


def recall(found: set, exact: set) -> float:
    return len(found & exact) / max(len(exact), 1)


# --------------------------------------------------------------------------------------------
# The benchmark


def configs(n: int) -> list[tuple[str, str, dict, list[int]]]:
    """(label, kind, build params, probe values) to try at size ``n`` (hopelessly slow ones left out)."""
    small = n <= 100_000
    nlist = int(4 * np.sqrt(n))
    out = [
        ("Flat", "flat", {}, [0]),
        ("MultiHash 8×32", "multihash", {"nhash": 8, "b": 32}, [0, 1, 2, 3] if small else [0, 1, 2]),
        ("MultiHash 16×16", "multihash", {"nhash": 16, "b": 16}, [0, 1, 2] if small else [0, 1] if n <= 1_000_000 else [0]),
        ("Hash b=16", "hash", {"b": 16}, [2]),
        ("Hash b=24", "hash", {"b": 24}, [2]),
    ]
    if n <= 1_000_000:
        out.append((f"IVF nlist={nlist}", "ivf", {"nlist": nlist}, [8, 32]))
    return out


#: What is worth trying on the resampled-real base (slow ones left out: buckets are large there).
REAL_CONFIGS = [
    ("Flat", "flat", {}, [0]),
    ("MultiHash 8×32", "multihash", {"nhash": 8, "b": 32}, [0, 1, 2]),
    ("MultiHash 16×16", "multihash", {"nhash": 16, "b": 16}, [0]),
    ("Hash b=24", "hash", {"b": 24}, [2]),
]


def probe_label(kind: str, value: int) -> str:
    return {"multihash": f"nflip {value}", "hash": f"nflip {value}", "ivf": f"nprobe {value}"}.get(kind, "")


def bench_size(n: int, base: np.ndarray, real: np.ndarray, args, rng, tried=None, label="random",
               with_guard=True, batches: int | None = None) -> tuple[list[str], dict]:
    """Rows of the main table at size ``n``, and per-configuration answers for the band table."""
    radius = args.radius
    batches = batches or args.batches
    count = batches * BATCH
    q_real = planted_queries(rng, base[:n], real, count)
    q_hard = planted_queries(rng, base[:n], uniform_masks(rng, 4096, radius), count)
    rows, answers = [], {}
    exact: dict[str, set] = {}
    for name, kind, params, probes in tried or configs(n):
        if kind != "flat" and args.only_flat:
            continue
        index, add_s, mem = build(kind, params, base[:n])
        for value in probes:
            set_probe(index, kind, value)
            ms, real_answer = time_batches(range_search(index, radius), q_real, batches)
            _, hard_answer = time_batches(range_search(index, radius), q_hard, 0)
            found_real, found_hard = answer_pairs(real_answer), answer_pairs(hard_answer)
            if kind == "flat":
                exact = {"real": found_real, "hard": found_hard}
            r_real, r_hard = recall(found_real, exact["real"]), recall(found_hard, exact["hard"])
            full = f"{name} {probe_label(kind, value)}".strip()
            answers[full] = (q_real, found_real, q_hard, found_hard)
            rows.append(f"| {n:,} {label} | {full} | {ms:.2f} | {1000 * ms / BATCH:.0f} | {r_real:.3f} | {r_hard:.3f} "
                        f"| {add_s:.2f} | {mem:.0f} |")
        del index
        _trim()
    if with_guard:
        rows += guard_rows(n, base[:n], q_real, radius, args.batches)
    return rows, {"exact": exact, "answers": answers, "base": base[:n]}


def guard_rows(n: int, base: np.ndarray, queries: np.ndarray, radius: int, batches: int) -> list[str]:
    """guard's own search path (IDMap2 + per-query sort and cut), and NumPy brute force at 10k."""
    rows = []
    ids = np.arange(n, dtype=np.int64)
    max_hits = MatchSettings().max_hits_per_frame
    index = FaissBinaryIndex(BITS)
    started = time.perf_counter()
    index.add(ids, base)
    add_s = time.perf_counter() - started
    ms, _ = time_batches(lambda q: _as_lims(index.search(q, radius, max_hits)), queries, batches)
    rows.append(f"| {n:,} random | guard FaissBinaryIndex ({index.kind}) | {ms:.2f} | {1000 * ms / BATCH:.0f} | — | — | {add_s:.2f} | — |")
    if n <= 10_000:
        brute = BruteForceIndex(BITS)
        brute.add(ids, base)
        ms, _ = time_batches(lambda q: _as_lims(brute.search(q, radius, max_hits)), queries, min(batches, 4))
        rows.append(f"| {n:,} random | NumPy BruteForceIndex | {ms:.2f} | {1000 * ms / BATCH:.0f} | 1.000 | 1.000 | — | — |")
    return rows


def _as_lims(hits) -> tuple[np.ndarray, np.ndarray]:
    return hits.offsets, hits.ids


def band_table(result: dict, radius: int) -> list[str]:
    """Recall per distance band of the planted neighbour (index-size independent for hash indexes)."""
    bands = [(0, 8), (9, 16), (17, 24), (25, radius)]
    base = result["base"]
    head = "| index | " + " | ".join(f"real {a}–{b}" for a, b in bands) + " | " + " | ".join(
        f"uniform {a}–{b}" for a, b in bands) + " |"
    lines = [head, "|---|" + "---:|" * (2 * len(bands))]
    exact = result["exact"]
    for name, (q_real, found_real, q_hard, found_hard) in result["answers"].items():
        cells = []
        for queries, found, key in ((q_real, found_real, "real"), (q_hard, found_hard, "hard")):
            truth = exact[key]
            dist = {p: int(popcount(queries[p[0]] ^ base[p[1]])) for p in truth}
            for a, b in bands:
                part = {p for p, d in dist.items() if a <= d <= b}
                cells.append(f"{recall(found, part):.3f}" if part else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def mask_table(masks: dict[str, np.ndarray], radius: int) -> list[str]:
    lines = ["| copy family | frames | p10 | p50 | p90 | share ≤ radius |", "|---|---:|---:|---:|---:|---:|"]
    for name, m in [*masks.items(), ("all (pooled, equal weight)", None)]:
        d = popcount(np.concatenate(list(masks.values()))) if m is None else popcount(m)
        p10, p50, p90 = np.quantile(d, [0.1, 0.5, 0.9])
        lines.append(f"| {name} | {len(d)} | {p10:.0f} | {p50:.0f} | {p90:.0f} | {np.mean(d <= radius):.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,4000000")
    parser.add_argument("--batches", type=int, default=16, help="batches of 32 queries per measurement")
    parser.add_argument("--radius", type=int, default=MatchSettings().seed_radius)
    parser.add_argument("--refs", type=int, default=3, help="synthetic references for the real masks")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pool-seeds", type=int, default=24, help="synthetic broadcasts of the real-code pool")
    parser.add_argument("--pool-seconds", type=float, default=60.0)
    parser.add_argument("--real-size", type=int, default=1_000_000, help="size of the resampled-real base (0: skip)")
    parser.add_argument("--real-batches", type=int, default=8, help="batches of 32 queries on the resampled base")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only-flat", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables as Markdown here")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)

    masks = real_masks(args.refs, args.seconds)
    pooled = np.concatenate([m[np.random.default_rng(0).integers(0, len(m), 1000)] for m in masks.values()])
    sizes = [int(s) for s in args.sizes.split(",")]
    base = np.random.default_rng(42).integers(0, 256, (max(sizes), BITS // 8), dtype=np.uint8)

    rows = [f"| vectors | index | ms / batch of {BATCH} | µs / query | recall (real masks) | recall (uniform 0–{args.radius}) "
            "| add s | memory MB |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    band_source = None
    for n in sizes:
        size_rows, result = bench_size(n, base, pooled, args, np.random.default_rng(n))
        rows += size_rows
        print("\n".join(size_rows), flush=True)
        if n <= 1_000_000:
            band_source = result
    del base
    _trim()
    pool = real_code_pool(args.pool_seeds, args.pool_seconds)
    order = np.random.default_rng(0).permutation(BITS)
    shuffled = permute_bits(pool, order)
    skew = [f"Real-code pool: {len(pool)} mhash16 codes of {args.pool_seeds} synthetic broadcasts. Bucket skew "
            "(mean over tables of Σp²·2^b; 1 for random codes; the pool's size caps what it can show at "
            f"2^b/{len(pool)}): "
            + ", ".join(f"{b}-bit pieces ×{bucket_skew(pool, b):,.0f} (bits permuted ×{bucket_skew(shuffled, b):,.0f})"
                        for b in (16, 24, 32)) + "."]
    print(skew[0], flush=True)
    if args.real_size:
        for label, source, flips in (("resampled real", pool, pooled),
                                     ("resampled real, bits permuted", shuffled, permute_bits(pooled, order))):
            real_base = resampled_base(np.random.default_rng(7), source, args.real_size)
            size_rows, _ = bench_size(args.real_size, real_base, flips, args, np.random.default_rng(8),
                                      tried=REAL_CONFIGS, label=label, with_guard=False, batches=args.real_batches)
            rows += size_rows
            print("\n".join(size_rows), flush=True)
            del real_base
            _trim()

    report = [
        f"Same-content distances of the real masks (mhash16, {args.refs} references × {args.seconds:.0f} s, "
        f"{SIZE[0]}×{SIZE[1]}, 4 fps), radius {args.radius}:", "", *mask_table(masks, args.radius), "",
        *skew, "",
        f"Radius {args.radius} search, {args.threads} thread(s), {args.batches} timed batches of {BATCH}:", "", *rows,
    ]
    if band_source is not None:
        report += ["", f"Recall by distance of the planted neighbour ({len(band_source['base']):,} vectors):", "",
                   *band_table(band_source, args.radius)]
    text = "\n".join(report)
    print()
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
