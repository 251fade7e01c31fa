#!/usr/bin/python3
"""mlm_head_torch.py — PyTorch's time for what build/bench/mlm_head times:
BERT's MLM prediction head (dense + GELU + LayerNorm, decoder tied to a
(V,C) embedding matrix) forward and backward, and cross-entropy over the
rows, on N random rows; median of --rounds after one warm-up.

  /usr/bin/python3 bench/mlm_head_torch.py [--threads 2] [--rows 1000]
      [--dim 256] [--vocab 30522] [--rounds 5]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    for k, v in [("threads", 2), ("rows", 1000), ("dim", 256), ("vocab", 30522), ("rounds", 5)]:
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    N, C, V = a.rows, a.dim, a.vocab
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(N, C, generator=g) * 2 - 1).requires_grad_(True)
    E = (torch.randn(V, C, generator=g) * 0.02).requires_grad_(True)
    W = (torch.randn(C, C, generator=g) * 0.02).requires_grad_(True)
    b, lb, bias = (torch.zeros(n, requires_grad=True) for n in (C, C, V))
    lw = torch.ones(C, requires_grad=True)
    y = torch.randint(0, V, (N,), generator=g)
    times = {"head forward": [], "loss": [], "head backward": []}
    for r in range(a.rounds + 1):
        for t in (x, E, W, b, lw, lb, bias):
            t.grad = None
        t0 = time.perf_counter()
        h = F.layer_norm(F.gelu(F.linear(x, W, b)), (C,), lw, lb, 1e-12)
        logits = F.linear(h, E, bias)
        t1 = time.perf_counter()
        z = logits.detach().requires_grad_(True)
        F.cross_entropy(z, y).backward()
        t2 = time.perf_counter()
        logits.backward(z.grad)
        t3 = time.perf_counter()
        if r:
            for k, d in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                times[k].append(d)
    print(f"torch {torch.__version__}: N = {N} rows, C = {C}, V = {V}, {a.threads} threads, median of {a.rounds}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:15s} {v * 1e3:8.1f} ms")
    print(f"  head forward + backward {(med['head forward'] + med['head backward']) * 1e3:.1f} ms; "
          f"with the loss {sum(med.values()) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
