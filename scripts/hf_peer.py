#!/usr/bin/env python3
"""Hugging Face transformers as the peer of opt-java on the GPU host (scripts/device-check.sh runs it).

Sub-commands:
  prompts  --out FILE                 fixed prompts (token ids, BOS included) from the tiny-opt fixture, JSON Lines
  make     --out DIR --shape 1.3b     a random-weight OPT checkpoint of a real size (fp16 safetensors, HF names)
  run      --model DIR --prompts FILE --out DIR
                                      HF on cuda fp16, eager attention: last-position logits, greedy tokens with the
                                      top-k logits of every step, prefill ms and decode ms/token -> DIR/hf.json
  fixture  --out DIR                  an hf.json made from the fixture reference (HF 4.36, CPU fp32), to dry-run
                                      `compare` without torch
  compare  --hf DIR --ours DIR        logits and greedy agreement, timings -> compare.json (+ --rows TSV);
                                      exit 1 on a real mismatch

`prompts`, `fixture` and `compare` need only the standard library. `make` and `run` need torch + transformers
(4.36 or later; written for 5.x).

Result directory format (hf.json written here, ours.json by io.github.optjava.devicecheck.CompareMain):
  {"peer": ..., "vocab_size": V, "new_tokens": N, "prompts": [{"name", "input_ids", "logits_file",
   "new_tokens": [N ids], "steps": [{"top_ids": [k], "top_logits": [k]}], "prefill_ms", "decode_ms_per_token"}]}
  logits_file: V little-endian float32 (the logits after the last prompt token), no header.
"""
import argparse
import array
import json
import math
import os
import shutil
import statistics
import struct
import sys
import time
from pathlib import Path

# The GPU host has no internet: never let transformers / huggingface_hub try the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "java/src/test/resources/fixtures"
TINY_MODEL = FIXTURES / "models/tiny-opt"
TINY_REFERENCE = FIXTURES / "reference/tiny-opt/reference.json"
DEFAULT_PROMPTS = "english,dutch,code,long"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
TOP_K = 8  # top entries recorded per greedy step (enough to find the other side's token after a near-tie flip)

# (hidden, layers, heads, ffn, word_embed_proj_dim, pre-LN) of the released OPT sizes (shared/ANCHORS.md);
# vocab 50272 and max positions 2048 for all.
SHAPES = {
    "125m": (768, 12, 12, 3072, 768, True),
    "350m": (1024, 24, 16, 4096, 512, False),
    "1.3b": (2048, 24, 32, 8192, 2048, True),
    "2.7b": (2560, 32, 32, 10240, 2560, True),
    "6.7b": (4096, 32, 32, 16384, 4096, True),
}
VOCAB = 50272
MAX_POSITIONS = 2048


def log(msg):
    print(f"[hf_peer {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def die(msg, code=2):
    print(f"hf_peer: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


# ---------------------------------------------------------------- float32 files (standard library only)

def read_f32(path, expected=None):
    data = Path(path).read_bytes()
    if len(data) % 4:
        die(f"{path}: {len(data)} bytes is not a whole number of float32 values")
    a = array.array("f")
    a.frombytes(data)
    if sys.byteorder == "big":
        a.byteswap()
    if expected is not None and len(a) != expected:
        die(f"{path}: {len(a)} floats, expected {expected} (the vocabulary size)")
    return a


def write_f32(path, values):
    a = array.array("f", values)
    if sys.byteorder == "big":
        a.byteswap()
    Path(path).write_bytes(a.tobytes())


def load_result(d, name):
    p = Path(d) / name
    if not p.is_file():
        die(f"{p} does not exist (did the step that writes it fail? see its log)")
    with open(p) as f:
        return json.load(f)


# ---------------------------------------------------------------- prompts / fixture

def reference_prompts(reference, names):
    with open(reference) as f:
        ref = json.load(f)
    by_name = {p["name"]: p for p in ref["prompts"]}
    missing = [n for n in names if n not in by_name]
    if missing:
        die(f"{reference}: no prompt named {missing} (have {sorted(by_name)})")
    return ref, [by_name[n] for n in names]


def cmd_prompts(args):
    _, prompts = reference_prompts(args.reference, args.names.split(","))
    with open(args.out, "w") as f:
        for p in prompts:
            f.write(json.dumps({"name": p["name"], "input_ids": p["input_ids"]}) + "\n")
    log(f"wrote {len(prompts)} prompts ({', '.join(str(len(p['input_ids'])) for p in prompts)} tokens) to {args.out}")


def cmd_fixture(args):
    """hf.json + logits from the fixture's HF 4.36 reference (CPU fp32): greedy steps record top1/top2 only."""
    ref, prompts = reference_prompts(args.reference, args.names.split(","))
    vocab = ref["config"]["vocab_size"]
    rows = read_f32(Path(args.reference).parent / ref["files"]["last_logits"]["file"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, p in enumerate(prompts):
        r = p["last_logits_row"]
        write_f32(out / f"logits_{i}.bin", rows[r * vocab:(r + 1) * vocab])
        g = p["greedy"]
        entries.append({
            "name": p["name"], "input_ids": p["input_ids"], "logits_file": f"logits_{i}.bin",
            "new_tokens": g["new_tokens"],
            "steps": [{"top_ids": [s["top1"], s["top2"]], "top_logits": [s["top1_logit"], s["top2_logit"]]}
                      for s in g["steps"]],
            "prefill_ms": None, "decode_ms_per_token": None})
    doc = {"peer": "hf-fixture", "source": str(args.reference), "transformers": ref["peer"].get("version"),
           "device": "cpu", "dtype": "float32", "vocab_size": vocab, "new_tokens": len(entries[0]["new_tokens"]),
           "prompts": entries}
    (out / "hf.json").write_text(json.dumps(doc, indent=1))
    log(f"wrote {out}/hf.json from {args.reference} ({len(entries)} prompts, {doc['new_tokens']} greedy tokens)")


# ---------------------------------------------------------------- make: random weights of a real OPT shape

def init_rule(name, shape):
    """(kind, a, b) for one parameter: ('normal', 0, std) or ('uniform', lo, hi).

    Like the fixtures (docs/fixtures.md) except Linear weights: the fixtures' N(0, 0.2) is fine at hidden 64, but
    at width d each Linear would multiply the activation RMS by 0.2*sqrt(fan_in) (about 9 at fan_in 2048, 18 for
    fc2's 8192), so every block would add ~100x its input to the residual stream and fp16 (max 65504) would
    overflow within a few of the 24 layers, leaving a model that measures nothing. N(0, 1/sqrt(fan_in)) keeps
    each Linear RMS-preserving: every block adds O(1), the residual stream grows only like sqrt(2 * layers), and
    fp16 rounding stays at its ~1e-3 relative level, as in a trained model (numpy model of the 1.3b shape:
    residual RMS 1.3 after layer 1, 4.1 at layer 12, 5.7 at layer 24; logits std ~36, max ~190).
    The tied token embedding keeps N(0, 0.8), so logits (final-LN output . embedding) have std
    ~0.8*sqrt(hidden) and are peaky.
    """
    if name.endswith("embed_tokens.weight"):
        return ("normal", 0.0, 0.8)
    if name.endswith("embed_positions.weight"):
        return ("normal", 0.0, 0.5)
    if name.endswith("layer_norm.weight"):
        return ("uniform", 0.9, 1.1)
    if name.endswith(".bias"):
        return ("normal", 0.0, 0.02)
    if name.endswith(".weight") and len(shape) == 2:
        return ("normal", 0.0, 1.0 / math.sqrt(shape[1]))
    raise ValueError(f"no init rule for parameter {name} {tuple(shape)}")


def import_torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        die(f"`{sys.argv[1] if len(sys.argv) > 1 else 'this'}` needs torch and transformers: {e}")
    return torch


def tf_version():
    import transformers
    parts = []
    for p in transformers.__version__.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts), transformers.__version__


def safetensors_names(model_dir):
    """Tensor name -> dtype of the saved checkpoint (single file or sharded), from the headers only."""
    d = Path(model_dir)
    files = [d / "model.safetensors"]
    index = d / "model.safetensors.index.json"
    if index.is_file():
        files = sorted({d / f for f in json.loads(index.read_text())["weight_map"].values()})
    names = {}
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        names.update({k: v["dtype"] for k, v in header.items() if k != "__metadata__"})
    return names


def make_info(args):
    return {"shape": args.shape, "seed": args.seed, "format": 1}


def cmd_make(args):
    out = Path(args.out)
    marker = out / "hf_peer_make.json"
    if not args.force and marker.is_file():
        try:
            prev = json.loads(marker.read_text())
            if {k: prev.get(k) for k in make_info(args)} == make_info(args) and safetensors_names(out):
                log(f"{out} already holds shape {args.shape} seed {args.seed}: reused (--force to rebuild)")
                return
        except (OSError, ValueError, KeyError, struct.error):
            pass
    torch = import_torch()
    from transformers import OPTConfig, OPTForCausalLM
    ver, ver_s = tf_version()
    if not torch.cuda.is_available():
        die("torch.cuda.is_available() is false: `make` builds the model on the GPU")
    hidden, layers, heads, ffn, proj, pre_ln = SHAPES[args.shape]
    t0 = time.perf_counter()
    cfg = OPTConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                    ffn_dim=ffn, max_position_embeddings=MAX_POSITIONS, word_embed_proj_dim=proj,
                    do_layer_norm_before=pre_ln, activation_function="relu", enable_bias=True,
                    layer_norm_elementwise_affine=True, dropout=0.0, attention_dropout=0.0, layerdrop=0.0,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2, tie_word_embeddings=True, use_cache=True)
    try:
        cfg._attn_implementation = "eager"
    except Exception:  # noqa: BLE001 - older/newer config classes; eager is the default for OPT anyway
        pass
    with torch.device("cuda"):
        model = OPTForCausalLM(cfg)
    model = model.to(device="cuda", dtype=torch.float32).eval()
    emb = model.get_input_embeddings().weight
    gen = torch.Generator(device="cuda")
    gen.manual_seed(args.seed)
    with torch.no_grad():
        # Sorted names, lm_head skipped (tied: the same tensor as embed_tokens), so the draws do not depend
        # on the order or de-duplication of named_parameters in a given transformers version.
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.startswith("lm_head."):
                continue
            kind, a, b = init_rule(name, tuple(p.shape))
            if kind == "normal":
                p.normal_(a, b, generator=gen)
            else:
                p.uniform_(a, b, generator=gen)
        emb[1].zero_()  # pad row, as in real OPT
        head = model.get_output_embeddings().weight
        if head.data_ptr() != emb.data_ptr():
            head.copy_(emb)
    model = model.half()
    log(f"built opt-{args.shape} shape ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters) "
        f"on {torch.cuda.get_device_name(0)} in {time.perf_counter() - t0:.1f} s (transformers {ver_s})")

    # Sanity forward: finite logits, and the residual stream stays O(1..10) (see init_rule).
    ids = torch.tensor([[2, 2522, 165, 351, 5, 2836, 94, 76]], device="cuda")
    with torch.inference_mode():
        o = model(input_ids=ids, output_hidden_states=True)
    rms = [float(h.float().pow(2).mean().sqrt()) for h in o.hidden_states]
    last = o.logits[0, -1].float()
    top = torch.topk(last, 2).values.tolist()
    sanity = {"finite": bool(torch.isfinite(o.logits).all()), "max_abs_logit": float(last.abs().max()),
              "top1_top2_margin": top[0] - top[1], "hidden_rms_first_mid_last": [rms[0], rms[len(rms) // 2], rms[-1]]}
    log(f"sanity: {sanity}")
    if not sanity["finite"]:
        die("the random model gives non-finite logits in fp16")

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t1 = time.perf_counter()
    kw = {"max_shard_size": "50GB"}
    if ver < (5, 0):
        kw["safe_serialization"] = True  # v5 removed the argument (safetensors only)
    model.save_pretrained(str(out), **kw)
    names = safetensors_names(out)
    if "model.decoder.embed_tokens.weight" not in names and "decoder.embed_tokens.weight" not in names:
        die(f"saved checkpoint lacks model.decoder.embed_tokens.weight (has {sorted(names)[:5]} ...)")
    bad = sorted({dt for dt in names.values() if dt != "F16"})
    if bad:
        die(f"saved checkpoint has dtypes {bad}, expected only F16")
    src = Path(args.tokenizer_from)
    for f in TOKENIZER_FILES:
        s = src / f
        if not s.is_file() or s.stat().st_size == 0:
            s = FIXTURES / "tokenizer" / f
        shutil.copyfile(s, out / f)  # follows symlinks: copies the contents
    size = sum(f.stat().st_size for f in out.iterdir())
    info = dict(make_info(args), transformers=ver_s, torch=torch.__version__, tensors=len(names),
                lm_head_stored="lm_head.weight" in names, bytes=size, sanity=sanity)
    marker.write_text(json.dumps(info, indent=1))
    log(f"saved {out} ({size / 1e9:.2f} GB, {len(names)} tensors, lm_head stored: {'lm_head.weight' in names}) "
        f"in {time.perf_counter() - t1:.1f} s")


# ---------------------------------------------------------------- run: the HF peer on cuda fp16

def read_prompts(path):
    prompts = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                p = json.loads(line)
                if not p.get("input_ids"):
                    die(f"{path}:{n}: no input_ids")
                prompts.append({"name": p.get("name", f"prompt{len(prompts)}"), "input_ids": list(p["input_ids"])})
    if not prompts:
        die(f"{path}: no prompts")
    return prompts


def cmd_run(args):
    import inspect
    torch = import_torch()
    from transformers import OPTForCausalLM
    ver, ver_s = tf_version()
    if not torch.cuda.is_available():
        die("torch.cuda.is_available() is false")
    prompts = read_prompts(args.prompts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda")
    t0 = time.perf_counter()
    dtype_kw = "dtype" if ver >= (4, 56) else "torch_dtype"
    model = OPTForCausalLM.from_pretrained(args.model, attn_implementation="eager", **{dtype_kw: torch.float16})
    model = model.to(device=dev, dtype=torch.float16).eval()  # explicit: whatever the kwargs did
    attn = getattr(model.config, "_attn_implementation", "?")
    if attn != "eager":
        log(f"warning: attention implementation is {attn!r}, not 'eager'")
    load_s = time.perf_counter() - t0
    log(f"loaded {args.model} in {load_s:.1f} s (transformers {ver_s}, torch {torch.__version__}, attn {attn})")
    params = inspect.signature(model.forward).parameters
    keep = {"logits_to_keep": 1} if "logits_to_keep" in params else (
        {"num_logits_to_keep": 1} if "num_logits_to_keep" in params else {})
    n_new = args.new_tokens

    def pick(logits):
        """Greedy token (torch.argmax, as generate() does) and the top-k, in one device->host copy."""
        vals, idx = torch.topk(logits.float(), TOP_K)
        packed = torch.cat([torch.argmax(logits).view(1).float(), vals, idx.float()]).tolist()
        return int(packed[0]), [int(i) for i in packed[1 + TOP_K:]], packed[1:1 + TOP_K]

    def greedy(ids, steps):
        """Prefill + (steps - 1) decode steps through HF's KV cache; returns what it saw and the timings."""
        n = len(ids)
        torch.cuda.synchronize()
        t_a = time.perf_counter()
        o = model(input_ids=torch.tensor([ids], device=dev), attention_mask=torch.ones(1, n, dtype=torch.long,
                  device=dev), use_cache=True, **keep)
        last = o.logits[0, -1]
        tok, top_ids, top_vals = pick(last)
        t_b = time.perf_counter()
        last_logits = last.float().cpu()
        past = o.past_key_values
        tokens, recs = [tok], [{"top_ids": top_ids, "top_logits": top_vals}]
        torch.cuda.synchronize()
        t_c = time.perf_counter()
        for s in range(1, steps):
            o = model(input_ids=torch.tensor([[tok]], device=dev),
                      attention_mask=torch.ones(1, n + s, dtype=torch.long, device=dev),
                      past_key_values=past, use_cache=True)
            past = o.past_key_values
            tok, top_ids, top_vals = pick(o.logits[0, -1])
            tokens.append(tok)
            recs.append({"top_ids": top_ids, "top_logits": top_vals})
        torch.cuda.synchronize()
        t_d = time.perf_counter()
        decode = (t_d - t_c) * 1000 / (steps - 1) if steps > 1 else None
        return tokens, recs, last_logits, (t_b - t_a) * 1000, decode

    entries = []
    with torch.inference_mode():
        greedy(prompts[0]["input_ids"], min(4, n_new))  # warm-up: cuBLAS handles, allocator, kernels
        for i, p in enumerate(prompts):
            tokens, recs, last_logits, pre_ms, dec_ms = greedy(p["input_ids"], n_new)
            last_logits.numpy().astype("<f4").tofile(out / f"logits_{i}.bin")
            e = {"name": p["name"], "input_ids": p["input_ids"], "logits_file": f"logits_{i}.bin",
                 "new_tokens": tokens, "steps": recs, "prefill_ms": pre_ms, "decode_ms_per_token": dec_ms}
            # Cross-check the manual loop against generate() (greedy). EOS may end generate() early: compare
            # its tokens with the same-length prefix of ours.
            try:
                ids = torch.tensor([p["input_ids"]], device=dev)
                torch.cuda.synchronize()
                t_g = time.perf_counter()
                g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                                   do_sample=False, num_beams=1, pad_token_id=1)
                torch.cuda.synchronize()
                gen = g[0, len(p["input_ids"]):].tolist()
                e["generate_ms"] = (time.perf_counter() - t_g) * 1000
                e["generate_agrees"] = gen == tokens[:len(gen)]
                if not e["generate_agrees"]:
                    e["generate_tokens"] = gen
            except Exception as ex:  # noqa: BLE001 - a cross-check only; the manual loop is the result
                e["generate_agrees"] = None
                e["generate_error"] = f"{type(ex).__name__}: {ex}"[:300]
            entries.append(e)
            log(f"{p['name']}: {len(p['input_ids'])} tokens, prefill {pre_ms:.2f} ms, decode "
                f"{dec_ms if dec_ms is None else round(dec_ms, 3)} ms/token, generate agrees: {e['generate_agrees']}")
    doc = {"peer": "hf", "transformers": ver_s, "torch": torch.__version__, "device": torch.cuda.get_device_name(0),
           "dtype": "float16", "attn_implementation": attn, "model": str(args.model), "load_s": load_s,
           "vocab_size": model.config.vocab_size, "new_tokens": n_new, "prompts": entries,
           "timing": timing_summary(entries)}
    (out / "hf.json").write_text(json.dumps(doc, indent=1))
    log(f"wrote {out}/hf.json: {doc['timing']}")


def timing_summary(entries):
    def med(key):
        v = [e[key] for e in entries if e.get(key) is not None]
        return statistics.median(v) if v else None
    return {"prefill_ms_median": med("prefill_ms"), "decode_ms_per_token_median": med("decode_ms_per_token")}


# ---------------------------------------------------------------- compare

def step_logit(step, token):
    """The logit of `token` in a recorded step's top-k, or None when it is not among them."""
    if step and token in step["top_ids"]:
        return step["top_logits"][step["top_ids"].index(token)]
    return None


def flip_gap(step, mine, other):
    """How far `mine` (this side's greedy choice) leads `other` in this side's logits: exact when `other` is in
    the recorded top-k; otherwise a lower bound (lead over the last recorded entry). Returns (gap, exact)."""
    if not step or not step.get("top_ids"):
        return None, False
    top = step_logit(step, mine)
    if top is None:
        top = step["top_logits"][0]
    o = step_logit(step, other)
    if o is not None:
        return top - o, True
    return top - step["top_logits"][-1], False


def classify_flip(a_step, a_tok, b_step, b_tok, err):
    """Greedy tokens differ (a_tok vs b_tok) after the same prefix. With |logit error| <= err on each token,
    gap_a + gap_b <= 2 * err is needed: each side's lead of its own token over the other one must be bridged by
    errors on the two tokens. Returns a dict with the verdict 'near-tie flip' or 'MISMATCH'."""
    ga, exact_a = flip_gap(a_step, a_tok, b_tok)
    gb, exact_b = flip_gap(b_step, b_tok, a_tok)
    margin = None
    if a_step and len(a_step.get("top_logits", [])) >= 2:
        margin = a_step["top_logits"][0] - a_step["top_logits"][1]
    if ga is None:
        verdict = "MISMATCH"  # no margins recorded: nothing can excuse it
        total = None
    else:
        total = ga + max(gb or 0.0, 0.0)
        verdict = "near-tie flip" if total <= 2 * err else "MISMATCH"
    return {"hf_margin": margin, "gap_hf": ga, "gap_hf_exact": exact_a, "gap_ours": gb, "gap_ours_exact": exact_b,
            "gap_sum": total, "err": err, "verdict": verdict}


def shared_top_error(a_step, b_step):
    """max |a - b| over the token ids both sides recorded at this step (an error sample at that step)."""
    m = 0.0
    if a_step and b_step:
        for t, v in zip(a_step["top_ids"], a_step["top_logits"]):
            w = step_logit(b_step, t)
            if w is not None:
                m = max(m, abs(v - w))
    return m


def logit_errors(hf_row, our_row):
    max_abs, total, scale, bad = 0.0, 0.0, 0.0, 0
    for a, b in zip(hf_row, our_row):
        if not (math.isfinite(a) and math.isfinite(b)):
            bad += 1
            continue
        d = abs(a - b)
        total += d
        if d > max_abs:
            max_abs = d
        if abs(a) > scale:
            scale = abs(a)
    scale = max(scale, 1.0)
    return {"max_abs": max_abs if not bad else math.inf, "mean_abs": total / max(1, len(hf_row) - bad),
            "row_max_abs_logit": scale, "max_rel": (max_abs if not bad else math.inf) / scale, "non_finite": bad}


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{v:.{digits}g}" if abs(v) < 1e-2 else f"{v:.{digits}f}"
    return str(v)


def cmd_compare(args):
    hf = load_result(args.hf, "hf.json")
    ours = load_result(args.ours, "ours.json")
    problems = []
    if len(hf["prompts"]) != len(ours["prompts"]):
        die(f"{len(hf['prompts'])} HF prompts vs {len(ours['prompts'])} of ours: not the same prompts file", 1)
    vocab = hf["vocab_size"]
    if ours.get("vocab_size") != vocab:
        die(f"vocab size {vocab} (HF) vs {ours.get('vocab_size')} (ours): not the same model", 1)
    per = []
    for i, (h, o) in enumerate(zip(hf["prompts"], ours["prompts"])):
        name = h.get("name", f"prompt{i}")
        if h["input_ids"] != o["input_ids"]:
            die(f"prompt {i} ({name}): different input_ids on the two sides", 1)
        errs = logit_errors(read_f32(Path(args.hf) / h["logits_file"], vocab),
                            read_f32(Path(args.ours) / o["logits_file"], vocab))
        r = {"name": name, "prompt_tokens": len(h["input_ids"]), **errs}
        if errs["max_rel"] > args.rel_tol:
            problems.append(f"{name}: logit error {fmt(errs['max_rel'])} of the row's max |logit| > {args.rel_tol}")
        ht, ot = h["new_tokens"], o["new_tokens"]
        n = min(len(ht), len(ot))
        if len(ht) != len(ot):
            r["note"] = f"{len(ht)} HF tokens vs {len(ot)} of ours: compared the first {n}"
        first = next((s for s in range(n) if ht[s] != ot[s]), None)
        r.update(compared=n, agree=n if first is None else first, first_diff_step=first)
        if first is not None:
            hs = h["steps"][first] if first < len(h.get("steps", [])) else None
            os_ = o["steps"][first] if first < len(o.get("steps", [])) else None
            err = max(errs["max_abs"], shared_top_error(hs, os_))
            flip = classify_flip(hs, ht[first], os_, ot[first], err)
            flip.update(step=first, hf_token=ht[first], our_token=ot[first])
            r["flip"] = flip
            if flip["verdict"] == "MISMATCH":
                problems.append(f"{name}: greedy differs at step {first} (HF {ht[first]}, ours {ot[first]}) with gap "
                                f"{fmt(flip['gap_sum'])} > 2 x error {fmt(err)}")
        b = o.get("batched_tokens")
        if b is not None:
            bf = next((s for s in range(min(len(b), len(ot))) if b[s] != ot[s]), None)
            r["batched_equals_unbatched"] = bf is None and len(b) == len(ot)
            if bf is not None:
                os_ = o["steps"][bf] if bf < len(o.get("steps", [])) else None
                gap, exact = flip_gap(os_, ot[bf], b[bf])
                verdict = "near-tie flip" if gap is not None and gap <= 2 * errs["max_abs"] else "MISMATCH"
                r["batched_flip"] = {"step": bf, "gap": gap, "gap_exact": exact, "err": errs["max_abs"],
                                     "verdict": verdict}
                if verdict == "MISMATCH":
                    problems.append(f"{name}: batched greedy differs from one-at-a-time at step {bf} with gap "
                                    f"{fmt(gap)} > 2 x error {fmt(errs['max_abs'])}")
        r["hf_prefill_ms"], r["our_prefill_ms"] = h.get("prefill_ms"), o.get("prefill_ms")
        r["hf_decode_ms_per_token"], r["our_decode_ms_per_token"] = h.get("decode_ms_per_token"), o.get(
            "decode_ms_per_token")
        per.append(r)

    hs, os_ = timing_summary(hf["prompts"]), timing_summary(ours["prompts"])
    agree = sum(r["agree"] for r in per)
    compared = sum(r["compared"] for r in per)
    flips = [r for r in per if "flip" in r]
    summary = {
        "ok": not problems, "problems": problems, "rel_tol": args.rel_tol,
        "max_rel_logit_error": max(r["max_rel"] for r in per), "max_abs_logit_error": max(r["max_abs"] for r in per),
        "greedy_tokens_agree": agree, "greedy_tokens_compared": compared,
        "prompts_identical": sum(1 for r in per if r["first_diff_step"] is None), "prompts": len(per),
        "near_tie_flips": sum(1 for r in flips if r["flip"]["verdict"] == "near-tie flip"),
        "mismatches": sum(1 for r in flips if r["flip"]["verdict"] == "MISMATCH"),
        "batched_equals_unbatched": (None if any("batched_equals_unbatched" not in r for r in per)
                                     else sum(1 for r in per if r["batched_equals_unbatched"])),
        "hf_prefill_ms": hs["prefill_ms_median"], "our_prefill_ms": os_["prefill_ms_median"],
        "prefill_ratio_ours_over_hf": ratio(os_["prefill_ms_median"], hs["prefill_ms_median"]),
        "hf_decode_ms_per_token": hs["decode_ms_per_token_median"],
        "our_decode_ms_per_token": os_["decode_ms_per_token_median"],
        "decode_ratio_ours_over_hf": ratio(os_["decode_ms_per_token_median"], hs["decode_ms_per_token_median"]),
        "hf": {k: hf.get(k) for k in ("peer", "transformers", "torch", "device", "dtype", "attn_implementation")},
        "ours": {k: ours.get(k) for k in ("peer", "device", "dtype", "backend")},
    }
    doc = {"summary": summary, "prompts": per}
    out = Path(args.out) if args.out else Path(args.ours)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(doc, indent=1))

    print(f"{'prompt':<14} {'tok':>4} {'max|d|':>8} {'rel':>9} {'greedy':>7} {'first diff (HF margin, gap vs 2 x err)':<56} "
          f"{'prefill ms hf/ours':>19} {'decode ms/tok hf/ours':>22}")
    for r in per:
        f = r.get("flip")
        diff = "-" if f is None else (f"step {f['step']} {f['verdict']}: margin {fmt(f['hf_margin'])} "
                                      f"gap {fmt(f['gap_sum'])}/2x{fmt(f['err'])}")
        print(f"{r['name'][:14]:<14} {r['prompt_tokens']:>4} {fmt(r['max_abs']):>8} {fmt(r['max_rel']):>9} "
              f"{r['agree']:>3}/{r['compared']:<3} {diff[:56]:<56} "
              f"{fmt(r['hf_prefill_ms'], 2):>9}/{fmt(r['our_prefill_ms'], 2):<9} "
              f"{fmt(r['hf_decode_ms_per_token'], 2):>11}/{fmt(r['our_decode_ms_per_token'], 2):<10}")
    s = summary
    print(f"max rel logit error {fmt(s['max_rel_logit_error'])} (tol {args.rel_tol}); greedy {agree}/{compared} "
          f"tokens agree, {s['prompts_identical']}/{s['prompts']} prompts identical, {s['near_tie_flips']} near-tie "
          f"flip(s), {s['mismatches']} mismatch(es); batched == unbatched: "
          f"{fmt(s['batched_equals_unbatched'])}/{s['prompts']}")
    print("RESULT: " + ("ok" if not problems else "FAIL: " + "; ".join(problems)))

    if args.rows:
        bu = s["batched_equals_unbatched"]
        batched_bad = any(r.get("batched_flip", {}).get("verdict") == "MISMATCH" for r in per)
        rows = [
            ("hf vs ours: logits", "ok" if s["max_rel_logit_error"] <= args.rel_tol else "FAIL",
             f"max rel err {fmt(s['max_rel_logit_error'])} of row max |logit| (tol {args.rel_tol}), "
             f"max abs {fmt(s['max_abs_logit_error'])}, {s['prompts']} prompts"),
            ("hf vs ours: greedy", "ok" if s["mismatches"] == 0 else "FAIL",
             f"{agree}/{compared} tokens agree, {s['prompts_identical']}/{s['prompts']} prompts identical, "
             f"{s['near_tie_flips']} near-tie flip(s), {s['mismatches']} mismatch(es)"),
            ("ours: batched == alone",
             "FAIL" if batched_bad else ("info" if bu is None else ("ok" if bu == s["prompts"] else "info")),
             "not run" if bu is None else f"{bu}/{s['prompts']} prompts give the same greedy tokens batched as alone"),
            ("prefill ms (hf / ours)", "info",
             f"{fmt(s['hf_prefill_ms'], 2)} / {fmt(s['our_prefill_ms'], 2)} (median), ours/hf "
             f"{fmt(s['prefill_ratio_ours_over_hf'], 2)}"),
            ("decode ms/token (hf / ours)", "info",
             f"{fmt(s['hf_decode_ms_per_token'], 2)} / {fmt(s['our_decode_ms_per_token'], 2)} (median), ours/hf "
             f"{fmt(s['decode_ratio_ours_over_hf'], 2)}"),
        ]
        with open(args.rows, "w") as f:
            for row in rows:
                f.write("\t".join(row) + "\n")
    return 0 if not problems else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prompts", help="write the fixed prompts as JSON Lines")
    p.add_argument("--out", required=True)
    p.add_argument("--reference", default=str(TINY_REFERENCE))
    p.add_argument("--names", default=DEFAULT_PROMPTS)
    p = sub.add_parser("fixture", help="hf.json + logits from the fixture reference (no torch)")
    p.add_argument("--out", required=True)
    p.add_argument("--reference", default=str(TINY_REFERENCE))
    p.add_argument("--names", default=DEFAULT_PROMPTS)
    p = sub.add_parser("make", help="random-weight OPT checkpoint of a real shape (needs torch + a GPU)")
    p.add_argument("--out", required=True)
    p.add_argument("--shape", default="1.3b", choices=sorted(SHAPES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer-from", default=str(TINY_MODEL))
    p.add_argument("--force", action="store_true", help="rebuild even if --out holds this shape and seed")
    p = sub.add_parser("run", help="the HF peer on cuda fp16 (needs torch + a GPU)")
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--new-tokens", type=int, default=32)
    p = sub.add_parser("compare", help="HF vs ours (standard library only)")
    p.add_argument("--hf", required=True)
    p.add_argument("--ours", required=True)
    p.add_argument("--out", help="where compare.json goes (default: --ours)")
    p.add_argument("--rows", help="also write summary rows (name TAB status TAB detail) for device-check.sh")
    # Why 1e-2 of the row's largest |logit|: fp16 keeps 11 significant bits (unit roundoff 4.9e-4), the logits
    # themselves are fp16 on both sides (up to one half-ulp each, <= 5e-4 of the row max), and 24 layers of
    # differently-ordered fp16 rounding (GEMM tiling, fused ops, softmax precision) move the final hidden state by
    # ~1e-3..5e-3 relative (a numpy model of exactly this shape and init, every op rounded to fp16 vs float32:
    # 1.1e-3 of the row max, logits up to ~190). A real bug (wrong position offset, mask, scale, layer-norm,
    # bias) moves logits by the order of their spread, i.e. 10-100 % of the row max. 1e-2 is ~3x above the
    # expected noise (~9x above the simulated one) and ~10x below the smallest bug.
    p.add_argument("--rel-tol", type=float, default=1e-2)
    args = ap.parse_args(argv)
    if getattr(args, "new_tokens", 1) < 1:
        die("--new-tokens must be at least 1")
    rc = {"prompts": cmd_prompts, "fixture": cmd_fixture, "make": cmd_make, "run": cmd_run,
          "compare": cmd_compare}[args.cmd](args)
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
