#!/usr/bin/env python3
"""Expected results of HF's MinPLogitsWarper and TypicalLogitsWarper on random rows, for
MinPTypicalProcessorTest. A line-by-line transliteration of transformers' logits_process.py (v5) into plain
Python floats (double precision; torch works in float32, so rows whose cut falls within 1e-4 of a token are
left out). Needs no torch. Writes JSON to stdout:

    python3 scripts/dev/warper_cases.py > java/src/test/resources/warpers/warper_cases.json
"""
import json
import math
import random


def softmax(xs):
    m = max(xs)
    ws = [math.exp(x - m) if x != -math.inf else 0.0 for x in xs]
    s = sum(ws)
    return [w / s for w in ws]


def min_p(scores, p_min):
    probs = softmax(scores)
    top = max(probs)
    remove = [p < p_min * top for p in probs]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # argsort descending
    remove[order[0]] = False  # min_tokens_to_keep = 1
    margin = min((abs(p - p_min * top) for p in probs if p > 0), default=1.0)
    return [-math.inf if r else s for s, r in zip(scores, remove)], margin / top


def typical(scores, mass):
    probs = softmax(scores)
    normalized = [math.log(p) if p > 0 else -math.inf for p in probs]
    ent = -sum(n * p for n, p in zip(normalized, probs) if p > 0)  # nansum
    shifted = [abs(-n - ent) for n in normalized]
    order = sorted(range(len(scores)), key=lambda i: shifted[i])
    sorted_scores = [shifted[i] for i in order]
    cumulative, acc = [], 0.0
    for i in order:
        acc += probs[i]
        cumulative.append(acc)
    last_ind = min(sum(1 for c in cumulative if c < mass), len(scores) - 1)
    cut = sorted_scores[last_ind]
    remove = [s > cut for s in sorted_scores]
    remove[0] = False
    out = list(scores)
    for j, i in enumerate(order):
        if remove[j]:
            out[i] = -math.inf
    # how close the cut is: to the cumulative mass, and between the distances around it
    margin = min([abs(c - mass) for c in cumulative] + [abs(s - cut) for s in sorted_scores if s != cut] + [1.0])
    return out, margin


def main():
    rnd = random.Random(7)
    cases = []
    while len(cases) < 40:
        n = rnd.choice([5, 17, 64, 200])
        spread = rnd.choice([0.5, 2.0, 5.0])
        row = [round(rnd.gauss(0, spread) * 64) / 64 for _ in range(n)]  # exact in float32
        for i in range(n):
            if rnd.random() < 0.1:
                row[i] = -math.inf
        if sum(1 for x in row if x != -math.inf) < 2:
            continue
        if rnd.random() < 0.5:
            p = rnd.choice([0.05, 0.1, 0.3, 0.7])
            out, margin = min_p(row, p)
            kind = "min_p"
        else:
            p = rnd.choice([0.2, 0.5, 0.9, 0.95])
            out, margin = typical(row, p)
            kind = "typical_p"
        if margin < 1e-4:  # float32 (HF) and double (here) must agree on every token
            continue
        enc = lambda xs: [None if x == -math.inf else x for x in xs]
        cases.append({"kind": kind, "p": p, "logits": enc(row), "expected": enc(out)})
    print(json.dumps({"generator": "scripts/dev/warper_cases.py", "cases": cases}))


if __name__ == "__main__":
    main()
