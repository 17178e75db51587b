#!/usr/bin/env python3
"""Writes a random ~110M-parameter Llama-shaped model (hidden 768, 12 layers, 12 heads,
4 kv heads, vocab 32000, tied embeddings) for the generation benchmark. Random weights
are enough to time generation; nothing is downloaded.
    python bench/make_bench_model.py OUT_DIR
"""
import sys

import torch
import transformers as tf

torch.manual_seed(0)
cfg = tf.LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                     num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
                     tie_word_embeddings=True, bos_token_id=None, eos_token_id=None, pad_token_id=None)
model = tf.LlamaForCausalLM(cfg)
n = sum(p.numel() for p in model.parameters())
model.save_pretrained(sys.argv[1])
print(f"wrote {sys.argv[1]}: {n / 1e6:.1f}M parameters")
