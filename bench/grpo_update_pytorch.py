#!/usr/bin/env python3
"""The GRPO update of bench/grpo_update_bench.cpp in plain PyTorch + transformers, on the
same weights and settings: microbatched gradient accumulation, the clipped PG token loss
normalized by the global token count, grad-norm clipping at 1.0, AdamW (lr 1e-6, weight
decay 0.01), old logprobs scored once before timing, one warm-up step, best of N. Prints
trained (response) tokens per second of wall time and per CPU-second of the process.
By default AdamW is PyTorch's default for CPU tensors (a per-tensor loop) and the
lm_head runs over every position; --optimizer fused --logits response is the update as
transformers' Trainer and TRL's GRPO would run it (fused AdamW, logits_to_keep).
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
ap.add_argument("--optimizer", choices=["default", "fused"], default="default",
                help="AdamW as constructed with no options (a per-tensor loop on the CPU), or fused=True "
                     "(what transformers' Trainer, and so TRL, picks by default with torch >= 2.8)")
ap.add_argument("--logits", choices=["all", "response"], default="all",
                help="the lm_head over every position, or only over the positions that predict response "
                     "tokens (logits_to_keep, as TRL's GRPO does; every row here has the same prompt length)")
a = ap.parse_args()
model = tf.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8,
                        fused=True if a.optimizer == "fused" else None)

g = torch.Generator().manual_seed(0)
ids = torch.randint(0, model.config.vocab_size, (a.batch, a.seq), generator=g)
attn = torch.ones_like(ids)
mask = torch.zeros(a.batch, a.seq)
mask[:, a.prompt:] = 1
adv = torch.randn(a.batch, generator=g)


def token_logprobs(mb_ids, mb_attn):  # (b, T): lp[:, t] = log p(ids[:, t] | ids[:, :t]); 0 where not computed
    T = mb_ids.shape[1]
    keep = T - a.prompt + 1 if a.logits == "response" else 0  # 0: all positions
    logits = model(input_ids=mb_ids, attention_mask=mb_attn, logits_to_keep=keep).logits[:, :-1].float()
    K = logits.shape[1]  # predicts tokens T-K .. T-1
    lp = torch.log_softmax(logits, -1).gather(-1, mb_ids[:, T - K:, None]).squeeze(-1)
    return torch.nn.functional.pad(lp, (T - K, 0))


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
best = best_cpu = 1e30
for _ in range(a.repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    loss = step()
    best_cpu = min(best_cpu, time.process_time() - c0)
    best = min(best, time.perf_counter() - t0)
n = a.batch * (a.seq - a.prompt)
print(f"pytorch {torch.__version__} transformers {tf.__version__} batch={a.batch} seq={a.seq} prompt={a.prompt} "
      f"microbatch={a.microbatch} optimizer={a.optimizer} logits={a.logits} threads={torch.get_num_threads()}: {n / best:.1f} trained tokens/s "
      f"(best of {a.repeats}: {best:.3f} s/step; {n / best_cpu:.1f} tokens per CPU-second; loss {loss:.6f})")
