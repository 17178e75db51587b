#!/usr/bin/env python3
"""transformers' generate on the same weights and settings as bench/generate_bench.cpp:
random prompts (seeded), greedy, every sequence forced to the full length, one warm-up,
best of N. Prints new tokens per second.
    python bench/hf_generate.py --model DIR --batch 16 --new 64 --prompt 32
"""
import argparse
import time

import torch
import transformers as tf

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--new", type=int, default=64)
ap.add_argument("--prompt", type=int, default=32)
ap.add_argument("--dtype", default="float32")
ap.add_argument("--repeats", type=int, default=3)
a = ap.parse_args()
torch.set_num_threads(torch.get_num_threads())
model = tf.AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, a.dtype)).eval()
g = torch.Generator().manual_seed(0)
ids = torch.randint(0, model.config.vocab_size, (a.batch, a.prompt), generator=g)
mask = torch.ones_like(ids)
kw = dict(attention_mask=mask, max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False, pad_token_id=0)
with torch.no_grad():
    model.generate(ids, **kw)
    best = 1e30
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        model.generate(ids, **kw)
        best = min(best, time.perf_counter() - t0)
print(f"transformers {tf.__version__} batch={a.batch} new={a.new} prompt={a.prompt} dtype={a.dtype}: "
      f"{a.batch * a.new / best:.1f} new tokens/s (best of {a.repeats}: {best:.3f} s)")
