"""Stand-in for hf_peer.py's commands that need torch or a GPU, in the device-check dry run
(scripts/dev/device-check-dryrun.sh): `bench` and `copybw` write plausible lines so that the tables and issue #5's
targets are printed; `make` makes an empty model directory; `run` and `warpers` fail as they would without torch."""
import argparse
import json
import os
import sys

p = argparse.ArgumentParser()
p.add_argument("command")
p.add_argument("--out")
p.add_argument("--shape", default="1.3b")
p.add_argument("--batch", default="1")
p.add_argument("--prompt-len", type=int, default=128)
p.add_argument("--gen-len", type=int, default=128)
p.add_argument("--prefill-len", type=int, default=0)
p.add_argument("--compiled", action="store_true")
p.add_argument("--engine-name")
a, _ = p.parse_known_args()

if a.command == "make":
    os.makedirs(a.out, exist_ok=True)
    sys.exit(0)
if a.command == "copybw":
    with open(a.out, "w") as f:
        json.dump({"copy_gbps": 4000.0}, f)
    sys.exit(0)
if a.command == "bench":
    engine = a.engine_name or ("hf-static-compiled" if a.compiled else "hf-eager")
    with open(a.out, "a") as f:
        for b in a.batch.split(","):
            d = {"model": "opt-" + a.shape, "batch": int(b), "prompt_len": a.prompt_len, "gen_len": a.gen_len,
                 "engine": engine, "prefill_ms": 10.0, "decode_ms_per_token": 6.0, "device": "NVIDIA H200 (dry run)"}
            if a.compiled:
                d.update(compile_counts_timed={"dynamo_graphs": 0, "cudagraph_skips": 0, "cudagraph_rerecords": 0},
                         static_cache_reused=True)
            f.write(json.dumps(d) + "\n")
        if a.prefill_len > 0 and not a.compiled:
            f.write(json.dumps({"model": "opt-" + a.shape, "batch": 1, "prompt_len": a.prefill_len, "gen_len": 0,
                                "engine": engine, "prefill_ms": 60.0}) + "\n")
    sys.exit(0)
print("hf_peer: error: `%s` needs torch and transformers (device-check dry run)" % a.command, file=sys.stderr)
sys.exit(2)
