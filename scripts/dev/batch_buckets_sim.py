#!/usr/bin/env python3
"""What padding decode steps to batch buckets (-Dopt.cuda.batchBuckets, BatchBuckets.of) would change in how many
decode steps replay a CUDA graph, in a model of a continuously batched server: requests arrive at random (rate per
step), with prompts of 16-512 and outputs of 16-256 tokens, at most --max-batch run at once, and a step that admits
a request is a prefill step (no graph). Each decode step's graph key is (batch size, block-table width rounded up to
a power of two), as OptModel declares it; CudaOps runs a key's first step op by op, captures its second and replays
the later ones, keeping at most 64 graphs (least recently used dropped).

A model, not a measurement: it says how the keys behave, not what a capture costs (device-check's row "engine:
batch buckets" times the real engine on a GPU). Session 13: 95-96 % of decode steps replayed without buckets at
0.25-1 arrivals per step, 98.7 % with them; 35-39 keys per run without, 10-11 with; padding rows 1-4 % of all rows
there, 33 % at a trickle (0.05: batches of 1-3, where a row more costs almost nothing, the step reading the weights
once whatever its rows; 99.2 -> 99.7 % replayed).

Usage: batch_buckets_sim.py [--seeds 5] [--requests 400] [--max-batch 32]
"""
import argparse
import collections
import random


def bucket(n):
    """BatchBuckets.of: 1, 2, 4, 8, then multiples of 8."""
    if n <= 8:
        b = 1
        while b < n:
            b *= 2
        return b
    return (n + 7) // 8 * 8


def run(seed, buckets, max_batch, requests, rate, max_graphs=64, block=16):
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    for _ in range(requests):
        t += rng.expovariate(rate)
        arrivals.append((t, rng.randint(16, 512), rng.randint(16, 256)))
    pending, running = collections.deque(), []
    graphs, seen, stats = collections.OrderedDict(), collections.Counter(), collections.Counter()
    ai = step = 0
    while ai < len(arrivals) or pending or running:
        while ai < len(arrivals) and arrivals[ai][0] <= step:
            pending.append(arrivals[ai][1:])
            ai += 1
        joined = False
        while pending and len(running) < max_batch:
            prompt, out = pending.popleft()
            running.append([prompt, 0, out])
            joined = True
        step += 1
        if not running:
            continue
        if not joined:
            n = len(running)
            b = bucket(n) if buckets else n
            blocks = (max(r[0] + r[1] + 1 for r in running) + block - 1) // block
            width = 1
            while width < blocks:
                width *= 2
            key = (b, width)
            stats["decode"] += 1
            stats["rows"] += n
            stats["padding"] += b - n
            if key in graphs:
                graphs.move_to_end(key)
                stats["replay"] += 1
            else:
                seen[key] += 1
                if seen[key] >= 2:  # the second step of a key is captured (and runs)
                    graphs[key] = True
                    if len(graphs) > max_graphs:
                        graphs.popitem(last=False)
        for r in running:
            r[1] += 1
        running = [r for r in running if r[1] < r[2]]
    stats["keys"] = len(seen)
    return stats


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--max-batch", type=int, default=32)
    a = p.parse_args()
    print(f"{'arrivals/step':>13} {'buckets':>7} | {'decode steps':>12} {'replayed':>8} {'keys/run':>8} "
          f"{'padding rows':>12}")
    for rate in (0.05, 0.25, 1.0):
        for buckets in (False, True):
            s = collections.Counter()
            for seed in range(a.seeds):
                s.update(run(seed, buckets, a.max_batch, a.requests, rate))
            print(f"{rate:>13} {'on' if buckets else 'off':>7} | {s['decode']:>12} "
                  f"{s['replay'] / s['decode']:>8.1%} {s['keys'] / a.seeds:>8.0f} "
                  f"{s['padding'] / max(1, s['rows']):>12.1%}")


if __name__ == "__main__":
    main()
