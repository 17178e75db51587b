#!/usr/bin/env python3
"""The GRPO update of bench/grpo_update_bench.cpp in plain PyTorch + transformers, on the
same weights and settings: microbatched gradient accumulation, the clipped PG token loss
normalized by the global token count, grad-norm clipping at 1.0, AdamW (lr 1e-6, weight
decay 0.01, PyTorch's default implementation for CPU tensors), old logprobs scored once
before timing, one warm-up step, best of N. Prints trained (response) tokens per second.
    python bench/grpo_update_pytorch.py --model DIR --batch 8 --seq 128 --prompt 32 --microbatch 4
"""
import argparse
import time

import torch
import transformers as tf

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--prompt", type=int, default=32)
ap.add_argument("--microbatch", type=int, default=4)
ap.add_argument("--repeats", type=int, default=3)
a = ap.parse_args()
model = tf.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)

g = torch.Generator().manual_seed(0)
ids = torch.randint(0, model.config.vocab_size, (a.batch, a.seq), generator=g)
attn = torch.ones_like(ids)
mask = torch.zeros(a.batch, a.seq)
mask[:, a.prompt:] = 1
adv = torch.randn(a.batch, generator=g)


def token_logprobs(mb_ids, mb_attn):  # (b, T): lp[:, t] = log p(ids[:, t] | ids[:, :t]); 0 at t = 0
    logits = model(input_ids=mb_ids, attention_mask=mb_attn).logits[:, :-1].float()
    lp = torch.log_softmax(logits, -1).gather(-1, mb_ids[:, 1:, None]).squeeze(-1)
    return torch.nn.functional.pad(lp, (1, 0))


with torch.no_grad():
    old = torch.cat([token_logprobs(ids[i:i + a.microbatch], attn[i:i + a.microbatch])
                     for i in range(0, a.batch, a.microbatch)])
tokens = mask.sum()
eps = 0.2


def step():
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for i in range(0, a.batch, a.microbatch):
        sl = slice(i, i + a.microbatch)
        lp = token_logprobs(ids[sl], attn[sl])
        r = torch.exp(lp - old[sl])
        A = adv[sl, None]
        l = torch.maximum(-A * r, -A * r.clamp(1 - eps, 1 + eps))  # clipped PG, inline
        loss = (l * mask[sl]).sum() / tokens
        loss.backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return total


step()  # warm-up
best = 1e30
for _ in range(a.repeats):
    t0 = time.perf_counter()
    loss = step()
    best = min(best, time.perf_counter() - t0)
n = a.batch * (a.seq - a.prompt)
print(f"pytorch {torch.__version__} transformers {tf.__version__} batch={a.batch} seq={a.seq} prompt={a.prompt} "
      f"microbatch={a.microbatch} threads={torch.get_num_threads()}: {n / best:.1f} trained tokens/s "
      f"(best of {a.repeats}: {best:.3f} s/step; loss {loss:.6f})")
