#!/usr/bin/env python3
"""Summarises an Nsight Compute CSV (`ncu --csv --page raw --metrics gpu__time_duration.sum,dram__bytes_read.sum,
dram__bytes_write.sum`) per kernel name: calls, mean and total GPU time, share, and the DRAM bandwidth each kernel
reached. scripts/device-check.sh runs ncu on `opt bench` with -Dopt.cuda.profilerRange=true, so the CSV holds the
kernels of a few replayed decode steps and nothing else; --steps turns totals into per-step numbers.

Why: a decode step at batch 1 takes ~3x its byte floor on the GPU itself (docs/perf.md, session 7), and the eager
per-op profile only shows the host's launch rate. ncu times each kernel node of the graph on its own.

A second table splits each kernel by launch shape (template arguments, grid, block): the matrix-vector Linear runs
once per weight shape, so its rows say which matrix reaches which bandwidth (session 11 computed this by hand).

Usage: ncu_summary.py NCU.csv [--steps N] [--copy-gbps G]
"""
import argparse
import csv
import re
import sys
from collections import OrderedDict

TIME_UNITS = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}  # -> microseconds
BYTE_UNITS = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def rows_of(path):
    """The CSV rows after ncu's own messages (lines that do not start with a quote)."""
    with open(path, newline="", errors="replace") as f:
        lines = [line for line in f if line.startswith('"')]
    return list(csv.reader(lines))


def number(text):
    text = (text or "").replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return None


def short_name(name):
    """A kernel's name without its parameter list and template arguments (cuBLAS names stay recognisable)."""
    name = re.sub(r"\(.*$", "", name)
    depth, out = 0, []
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    name = "".join(out).strip()
    name = re.sub(r"^(void|auto)\s+", "", name)
    return name.split("::")[-1] or name


def template_args(name):
    """The first template argument list of a kernel's name, compacted ("<__half, 2, 4, 1, DenseStore<__half>>" ->
    "half,2,4,1,Dense"): it tells instances of one kernel apart (the split gemv's S and M)."""
    name = re.sub(r"\(.*$", "", name).replace("<unnamed>::", "").replace("(anonymous namespace)::", "")
    start = name.find("<")
    if start < 0:
        return ""
    depth, end = 0, len(name)
    for i in range(start, len(name)):
        if name[i] == "<":
            depth += 1
        elif name[i] == ">":
            depth -= 1
            if depth == 0:
                end = i
                break
    parts = [p.strip() for p in re.split(r",(?![^<]*>)", name[start + 1:end])]
    short = [re.sub(r"<.*", "", re.sub(r"^.*::", "", p)).replace("__nv_", "").replace("__", "")
             .replace("Store", "") for p in parts]
    return ",".join(short)


def summarise(rows, steps, copy_gbps):
    if not rows:
        return ["ncu_summary: no CSV rows (did the profiler range record anything?)"]
    header = rows[0]
    col = {h: i for i, h in enumerate(header)}
    need = ["Kernel Name", "gpu__time_duration.sum"]
    missing = [h for h in need if h not in col]
    if missing:
        return [f"ncu_summary: columns {missing} not in the CSV header: {header[:12]}"]
    data = rows[1:]
    units = {}
    if data and number(data[0][col["gpu__time_duration.sum"]]) is None:  # the units row
        units = {h: data[0][i] for h, i in col.items()}
        data = data[1:]
    tu = TIME_UNITS.get(units.get("gpu__time_duration.sum", "nsecond"), 1e-3)
    bu = {m: BYTE_UNITS.get(units.get(m, "byte"), 1) for m in ("dram__bytes_read.sum", "dram__bytes_write.sum")}
    per = OrderedDict()
    shapes = OrderedDict()  # (kernel, template arguments, grid, block) -> [calls, µs, bytes]
    grid_col = col.get("Grid Size")
    block_col = col.get("Block Size")
    total_us = 0.0
    for r in data:
        if len(r) <= col["gpu__time_duration.sum"]:
            continue
        t = number(r[col["gpu__time_duration.sum"]])
        if t is None:
            continue
        us = t * tu
        b = 0.0
        for m in ("dram__bytes_read.sum", "dram__bytes_write.sum"):
            if m in col and len(r) > col[m]:
                b += (number(r[col[m]]) or 0.0) * bu[m]
        k = short_name(r[col["Kernel Name"]])
        e = per.setdefault(k, [0, 0.0, 0.0])
        e[0] += 1
        e[1] += us
        e[2] += b
        grid = r[grid_col] if grid_col is not None and len(r) > grid_col else "?"
        block = r[block_col] if block_col is not None and len(r) > block_col else "?"
        sh = shapes.setdefault((k, template_args(r[col["Kernel Name"]]), grid, block), [0, 0.0, 0.0])
        sh[0] += 1
        sh[1] += us
        sh[2] += b
        total_us += us
    steps = max(steps, 1)
    out = [f"{'kernel':<44} {'calls/step':>10} {'µs/call':>8} {'µs/step':>9} {'share':>6} {'GB/s':>7}"
           + (f" {'of copy':>7}" if copy_gbps else "")]
    for k, (n, us, b) in sorted(per.items(), key=lambda kv: -kv[1][1]):
        gbps = b / (us * 1e-6) / 1e9 if us > 0 else 0.0
        line = (f"{k[:44]:<44} {n / steps:>10.1f} {us / n:>8.2f} {us / steps:>9.1f} {100 * us / total_us:>5.1f}% "
                f"{gbps:>7.0f}")
        if copy_gbps:
            line += f" {100 * gbps / copy_gbps:>6.0f}%"
        out.append(line)
    out.append(f"{'all kernels':<44} {sum(e[0] for e in per.values()) / steps:>10.1f} {'':>8} "
               f"{total_us / steps:>9.1f}  (sum of kernel times per step: a graph step's GPU time minus this is "
               f"the time between kernels)")
    out.append("")
    out.append("by launch shape (kernels over 1 % of the time):")
    out.append(f"{'kernel':<30} {'template args':<26} {'grid':>14} {'block':>13} {'calls/step':>10} {'µs/call':>8} "
               f"{'MB/call':>8} {'GB/s':>6}" + (f" {'of copy':>7}" if copy_gbps else ""))
    for (k, targs, grid, block), (n, us, b) in sorted(shapes.items(), key=lambda kv: -kv[1][1]):
        if total_us <= 0 or us < 0.01 * total_us:
            continue
        gbps = b / (us * 1e-6) / 1e9 if us > 0 else 0.0
        line = (f"{k[:30]:<30} {targs[:26]:<26} {grid:>14} {block:>13} {n / steps:>10.1f} {us / n:>8.2f} "
                f"{b / n / 1e6:>8.2f} {gbps:>6.0f}")
        if copy_gbps:
            line += f" {100 * gbps / copy_gbps:>6.0f}%"
        out.append(line)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--steps", type=int, default=1, help="decode steps the range held (per-step numbers)")
    ap.add_argument("--copy-gbps", type=float, default=None, help="device-to-device copy bandwidth, for a percent")
    a = ap.parse_args()
    try:
        rows = rows_of(a.csv)
    except OSError as e:
        print(f"ncu_summary: {e}")
        return 1
    print("\n".join(summarise(rows, a.steps, a.copy_gbps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
