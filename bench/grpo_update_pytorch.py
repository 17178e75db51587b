#!/usr/bin/env python3
"""The GRPO update of bench/grpo_update_bench.cpp in plain PyTorch + transformers, on the
same weights and settings: microbatched gradient accumulation, the clipped PG token loss
normalized by the global token count, grad-norm clipping at 1.0, AdamW (lr 1e-6, weight
decay 0.01), old logprobs scored once before timing, one warm-up step, best of N. Prints
trained (response) tokens per second of wall time and per CPU-second of the process.
By default AdamW is PyTorch's default for CPU tensors (a per-tensor loop) and the
lm_head runs over every position; --optimizer fused --logits response is the update as
transformers' Trainer and TRL's GRPO would run it (fused AdamW, logits_to_keep).
--lengths varied gives row i a response of 16 + (61 i mod 81) tokens, right-padded to the
batch's longest row as TRL pads a batch of completions; --microbatch-tokens N instead
sorts the rows by length and fills microbatches up to N padded tokens, each cut to its
longest row (what troupe's trainer.microbatch_tokens does), for comparison.
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
ap.add_argument("--lengths", choices=["equal", "varied"], default="equal")
ap.add_argument("--microbatch-tokens", type=int, default=0)
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
if a.lengths == "varied":
    for i in range(a.batch):
        n = min(a.seq, a.prompt + 16 + (61 * i) % 81)
        ids[i, n:] = 0
        attn[i, n:] = 0
        mask[i, n:] = 0
    longest = int(attn.sum(1).max())
    ids, attn, mask = ids[:, :longest], attn[:, :longest], mask[:, :longest]
adv = torch.randn(a.batch, generator=g)

# The microbatches as (row indices, length): in order and padded to the batch's longest
# row, or sorted longest first into a token budget, each cut to its longest row.
lengths = attn.sum(1)
if a.microbatch_tokens > 0:
    order = sorted(range(a.batch), key=lambda i: -int(lengths[i]))
    plan, i = [], 0
    while i < a.batch:
        n = int(lengths[order[i]])
        k = max(a.microbatch_tokens // n, 1)
        plan.append((torch.tensor(order[i:i + k]), n))
        i += k
else:
    plan = [(torch.arange(i, min(i + a.microbatch, a.batch)), ids.shape[1]) for i in range(0, a.batch, a.microbatch)]


def token_logprobs(mb_ids, mb_attn):  # (b, T): lp[:, t] = log p(ids[:, t] | ids[:, :t]); 0 where not computed
    T = mb_ids.shape[1]
    keep = T - a.prompt + 1 if a.logits == "response" else 0  # 0: all positions
    logits = model(input_ids=mb_ids, attention_mask=mb_attn, logits_to_keep=keep).logits[:, :-1].float()
    K = logits.shape[1]  # predicts tokens T-K .. T-1
    lp = torch.log_softmax(logits, -1).gather(-1, mb_ids[:, T - K:, None]).squeeze(-1)
    return torch.nn.functional.pad(lp, (T - K, 0))


with torch.no_grad():
    old = torch.zeros(ids.shape)
    for rows, n in plan:
        old[rows, :n] = token_logprobs(ids[rows, :n], attn[rows, :n])
tokens = mask.sum()
eps = 0.2


def step():
    opt.zero_grad(set_to_none=True)
    total = 0.0
    for rows, n in plan:
        lp = token_logprobs(ids[rows, :n], attn[rows, :n])
        r = torch.exp(lp - old[rows, :n])
        A = adv[rows, None]
        l = torch.maximum(-A * r, -A * r.clamp(1 - eps, 1 + eps))  # clipped PG, inline
        loss = (l * mask[rows, :n]).sum() / tokens
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
n = float(tokens)
print(f"pytorch {torch.__version__} transformers {tf.__version__} batch={a.batch} seq={a.seq} prompt={a.prompt} "
      f"microbatch={a.microbatch} microbatch_tokens={a.microbatch_tokens} lengths={a.lengths} optimizer={a.optimizer} "
      f"logits={a.logits} threads={torch.get_num_threads()}: {n / best:.1f} trained tokens/s "
      f"(best of {a.repeats}: {best:.3f} s/step; {n / best_cpu:.1f} tokens per CPU-second; loss {loss:.6f}; "
      f"{n:.0f} tokens trained)")
