"""Baseline for bench/tokenizer_bench.cpp: Hugging Face `tokenizers` (Rust) encoding the
same inputs with the same tokenizer.json (the whole text, the text a line at a time,
the long runs), one string at a time, best of three.
    python bench/tokenizer_hf.py --dir tests/fixtures/tokenizers/llama3 --text FILE [--mb 2]
"""
import argparse
import time

from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--mb", type=float, default=2)
    a = ap.parse_args()
    tok = Tokenizer.from_file(a.dir + "/tokenizer.json")
    source = open(a.text, encoding="utf-8").read()
    text = ""
    while len(text.encode()) < a.mb * 1e6:
        text += source
    runs = "a" * 500000 + " " * 500000 + "x"
    # Split at "\n" only, as the C++ side does (splitlines() also splits at \r, \x0b, ...).
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    cases = (("text", [text]), ("lines", [line for line in lines if line]), ("runs", [runs]))
    for name, pieces in cases:
        size = sum(len(p.encode()) for p in pieces)
        best, ids = 0.0, 0
        for _ in range(3):
            start = time.perf_counter()
            n = sum(len(tok.encode(p, add_special_tokens=False).ids) for p in pieces)
            mb_per_s = size / 1e6 / (time.perf_counter() - start)
            if mb_per_s > best:
                best, ids = mb_per_s, n
        print(f"tokenizers {name}: {best:.2f} MB/s ({ids} ids)")


if __name__ == "__main__":
    main()
