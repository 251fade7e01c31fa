"""PyTorch peer for the runner benchmarks: a BERT encoder written with plain
torch ops (no `transformers`), loading a Hugging Face folder (config.json +
model.safetensors, parsed here), with Hugging Face semantics: post-LN,
exact erf GELU, additive attention mask (1 - mask) * -10000, mean pooling over
the attention mask.

Modes (run with /usr/bin/python3, which has torch):
  encode       eval mode, torch.inference_mode, length-sorted batches, mean
               pooling; prints load time and steady-state sentences/s.
  export-onnx  torch.onnx.export with dynamic batch and sequence axes; inputs
               input_ids, attention_mask (int64 [B,T]); output
               sentence_embedding = the mean-pooled last layer [B,C].
  train        full fine-tuning speed: mean pooling + linear 2-class head +
               cross-entropy, AdamW, dropout on; sentences/s over --steps
               steps after --warmup steps.
  check        max abs difference against the reference embeddings
               (../shared/reference/embeddings/<model>/last.mean.npy).

Ids files are the runner's ids.txt format: one sentence per line,
space-separated token ids, [CLS] ... [SEP].

For a fair peer, run with OMP_WAIT_POLICY=PASSIVE OPENBLAS_CORETYPE=SkylakeX
(the harness bench/harness.py does): otherwise torch's OpenMP threads spin
against OpenBLAS's and it runs 1.5x slower.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAFETENSORS_DTYPES = {  # name: (torch dtype, bytes per element)
    "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "F64": (torch.float64, 8), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
}


class SafeTensors:
    """A .safetensors file: u64 LE header length, JSON header {name: {dtype,
    shape, data_offsets}}, then the raw data. Tensors are read one at a time
    straight into their destination (no copy of the whole file in memory)."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        size = os.fstat(self.f.fileno()).st_size
        head = self.f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise ValueError(f"{path}: header length {n} runs past the end of the file")
        self.header = json.loads(self.f.read(n))
        self.header.pop("__metadata__", None)
        self.base, datalen = 8 + n, size - 8 - n
        for name, info in self.header.items():
            if not isinstance(info, dict) or info.get("dtype") not in SAFETENSORS_DTYPES:
                raise ValueError(f"{path}: tensor {name} has no supported dtype (F32, F16, BF16, F64, I64, I32)")
            if not isinstance(info.get("shape"), list) or len(info.get("data_offsets", ())) != 2:
                raise ValueError(f"{path}: tensor {name} lacks shape or data_offsets")
            a, b = info["data_offsets"]
            nbytes = math.prod(info["shape"]) * SAFETENSORS_DTYPES[info["dtype"]][1]
            if not 0 <= a <= b <= datalen or b - a != nbytes:
                raise ValueError(f"{path}: tensor {name} data_offsets [{a},{b}] do not fit "
                                 f"shape {info['shape']} {info['dtype']} in {datalen} data bytes")

    def close(self):
        self.f.close()

    def read_into(self, name, dst):
        """Copy tensor `name` into the float32 tensor dst (same shape)."""
        info = self.header[name]
        if tuple(info["shape"]) != tuple(dst.shape):
            raise ValueError(f"{self.path}: tensor {name} has shape {info['shape']}, expected {list(dst.shape)}")
        a, b = info["data_offsets"]
        self.f.seek(self.base + a)
        with torch.no_grad():
            if info["dtype"] == "F32" and dst.dtype == torch.float32 and dst.is_contiguous():
                if self.f.readinto(memoryview(dst.numpy()).cast("B")) != b - a:
                    raise ValueError(f"{self.path}: tensor {name}: short read")
            else:
                raw = bytearray(self.f.read(b - a))
                src = torch.frombuffer(raw, dtype=SAFETENSORS_DTYPES[info["dtype"]][0]) if raw else torch.empty(0)
                dst.copy_(src.reshape(dst.shape).to(dst.dtype))


class Bert(nn.Module):
    """BertModel (encoder only, no pooler) + mean pooling."""

    def __init__(self, cfg):
        super().__init__()
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.L = cfg["num_hidden_layers"]
        self.FF = cfg["intermediate_size"]
        self.eps = cfg.get("layer_norm_eps", 1e-12)
        self.p_hidden = cfg.get("hidden_dropout_prob", 0.1)
        self.p_attn = cfg.get("attention_probs_dropout_prob", 0.1)
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"hidden_act {cfg.get('hidden_act')!r}: only exact 'gelu' is implemented")
        C, Fd = self.C, self.FF
        P = nn.Parameter
        self.word = P(torch.zeros(cfg["vocab_size"], C))
        self.pos = P(torch.zeros(cfg["max_position_embeddings"], C))
        self.tok_type = P(torch.zeros(cfg.get("type_vocab_size", 2), C))
        self.emb_ln_w, self.emb_ln_b = P(torch.ones(C)), P(torch.zeros(C))
        self.layers = nn.ModuleList()
        for _ in range(self.L):
            m = nn.Module()
            for n, shape in (("q", (C, C)), ("k", (C, C)), ("v", (C, C)), ("o", (C, C)),
                             ("fc1", (Fd, C)), ("fc2", (C, Fd))):
                setattr(m, n + "_w", P(torch.zeros(shape)))
                setattr(m, n + "_b", P(torch.zeros(shape[0])))
            m.ln1_w, m.ln1_b = P(torch.ones(C)), P(torch.zeros(C))
            m.ln2_w, m.ln2_b = P(torch.ones(C)), P(torch.zeros(C))
            self.layers.append(m)

    HF_NAMES = {
        "q_w": "attention.self.query.weight", "q_b": "attention.self.query.bias",
        "k_w": "attention.self.key.weight", "k_b": "attention.self.key.bias",
        "v_w": "attention.self.value.weight", "v_b": "attention.self.value.bias",
        "o_w": "attention.output.dense.weight", "o_b": "attention.output.dense.bias",
        "ln1_w": "attention.output.LayerNorm.weight", "ln1_b": "attention.output.LayerNorm.bias",
        "fc1_w": "intermediate.dense.weight", "fc1_b": "intermediate.dense.bias",
        "fc2_w": "output.dense.weight", "fc2_b": "output.dense.bias",
        "ln2_w": "output.LayerNorm.weight", "ln2_b": "output.LayerNorm.bias",
    }

    def load_hf(self, st):
        names = {(k[5:] if k.startswith("bert.") else k): k for k in st.header}
        def take(dst, name):
            if name not in names:
                raise ValueError(f"{st.path}: tensor {name} is missing")
            st.read_into(names[name], dst.data)
        take(self.word, "embeddings.word_embeddings.weight")
        take(self.pos, "embeddings.position_embeddings.weight")
        take(self.tok_type, "embeddings.token_type_embeddings.weight")
        take(self.emb_ln_w, "embeddings.LayerNorm.weight")
        take(self.emb_ln_b, "embeddings.LayerNorm.bias")
        for i, m in enumerate(self.layers):
            for ours, hf in self.HF_NAMES.items():
                take(getattr(m, ours), f"encoder.layer.{i}.{hf}")

    def attention(self, m, x, add_mask):  # x (B,T,C), add_mask (B,1,1,T)
        B, T, C = x.shape
        D = C // self.H
        def heads(y):  # (B,T,C) -> (B,H,T,D)
            return y.view(B, T, self.H, D).permute(0, 2, 1, 3)
        q = heads(F.linear(x, m.q_w, m.q_b))
        k = heads(F.linear(x, m.k_w, m.k_b))
        v = heads(F.linear(x, m.v_w, m.v_b))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(D)  # (B,H,T,T)
        probs = F.dropout(torch.softmax(scores + add_mask, dim=-1), self.p_attn, self.training)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, T, C)  # (B,T,C)
        return F.linear(ctx, m.o_w, m.o_b)

    def forward(self, input_ids, attention_mask):  # (B,T) int64 each -> emb (B,C)
        T = input_ids.shape[1]
        pos_ids = torch.arange(T, device=input_ids.device).unsqueeze(0)
        x = F.embedding(input_ids, self.word) + self.pos[pos_ids] + self.tok_type[0]  # (B,T,C)
        x = F.layer_norm(x, (self.C,), self.emb_ln_w, self.emb_ln_b, self.eps)
        x = F.dropout(x, self.p_hidden, self.training)
        add_mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0  # (B,1,1,T), as HF 4.x

        for m in self.layers:
            a = F.dropout(self.attention(m, x, add_mask), self.p_hidden, self.training)
            x = F.layer_norm(x + a, (self.C,), m.ln1_w, m.ln1_b, self.eps)
            h = F.gelu(F.linear(x, m.fc1_w, m.fc1_b))  # (B,T,F), exact erf GELU
            h = F.dropout(F.linear(h, m.fc2_w, m.fc2_b), self.p_hidden, self.training)
            x = F.layer_norm(x + h, (self.C,), m.ln2_w, m.ln2_b, self.eps)
        maskf = attention_mask.unsqueeze(-1).to(x.dtype)  # (B,T,1)
        summed = (x * maskf).sum(1)  # (B,C)
        return summed / maskf.sum(1).clamp(min=1e-9)


def load_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    model = Bert(cfg)
    st = SafeTensors(os.path.join(folder, "model.safetensors"))
    try:
        model.load_hf(st)
    finally:
        st.close()
    return model


def read_ids(path, limit=None):
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if limit is not None and len(out) >= limit:
                break
            try:
                ids = [int(t) for t in line.split()]
            except ValueError:
                raise ValueError(f"{path}:{n}: not a list of integer token ids")
            if not ids:
                raise ValueError(f"{path}:{n}: empty line (every sentence has at least [CLS] [SEP])")
            out.append(ids)
    return out


def pad_batch(seqs):
    """(input_ids, attention_mask) int64 (B,T), T = longest in the batch."""
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.int64)
    mask = torch.zeros(len(seqs), T, dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.int64)
        mask[i, :len(s)] = 1
    return ids, mask


def sorted_batches(seqs, batch):
    """Index lists of length-sorted batches (longest first), as both peers use."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    return [order[i:i + batch] for i in range(0, len(order), batch)]


def encode_all(model, seqs, batch):
    out = np.zeros((len(seqs), model.C), dtype=np.float32)
    with torch.inference_mode():
        for idx in sorted_batches(seqs, batch):
            ids, mask = pad_batch([seqs[i] for i in idx])
            out[idx] = model(ids, mask).numpy()
    return out


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cmd_encode(a):
    t0 = time.perf_counter()
    model = load_model(a.model).eval()
    seqs = read_ids(a.ids)
    t1 = time.perf_counter()
    emb = encode_all(model, seqs, a.batch)
    t2 = time.perf_counter()
    if a.save:
        np.save(a.save, emb)
    sps = len(seqs) / (t2 - t1)
    print(f"pytorch encode: {len(seqs)} sentences, batch {a.batch}, {torch.get_num_threads()} threads: "
          f"load {t1 - t0:.3f} s, encode {t2 - t1:.3f} s, {sps:.1f} sentences/s (steady state), "
          f"peak RSS {peak_rss_mib():.0f} MiB")
    print(f"RESULT engine=pytorch sentences={len(seqs)} load_s={t1 - t0:.4f} "
          f"steady_s={t2 - t1:.4f} steady_sps={sps:.2f}")


def cmd_export(a):
    model = load_model(a.model).eval()
    ids, mask = pad_batch([[101, 7592, 2088, 102], [101, 7592, 102]])
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), a.out, input_names=["input_ids", "attention_mask"],
                          output_names=["sentence_embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "sentence_embedding": {0: "batch"}},
                          opset_version=a.opset, do_constant_folding=True)
    print(f"exported {a.model} -> {a.out} (opset {a.opset}; inputs input_ids, attention_mask int64 "
          f"[batch, sequence]; output sentence_embedding float32 [batch, {model.C}] = mean-pooled last layer)")


def read_labels(path, n):
    """Column 2 of a tsv with a header row (SST-2 format), first n rows."""
    labels = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            if len(labels) >= n:
                break
            labels.append(int(line.rstrip("\n").split("\t")[-1]))
    return labels


def cmd_train(a):
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    model = load_model(a.model).train()
    head = nn.Linear(model.C, 2)
    nsent = (a.warmup + a.steps) * a.batch
    seqs = read_ids(a.ids, nsent)
    labels = read_labels(a.labels, len(seqs)) if a.labels else [0] * len(seqs)
    if len(seqs) < nsent or len(labels) < nsent:
        raise ValueError(f"{a.ids}: {len(seqs)} sentences ({len(labels)} labels), "
                         f"{nsent} needed for {a.warmup}+{a.steps} steps of {a.batch}")
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    t1 = time.perf_counter()
    losses, tokens = [], 0
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t2 = time.perf_counter()
        rows = range(step * a.batch, (step + 1) * a.batch)
        ids, mask = pad_batch([seqs[i] for i in rows])
        y = torch.tensor([labels[i] for i in rows], dtype=torch.int64)
        if step >= a.warmup:
            tokens += ids.numel()
        loss = F.cross_entropy(head(model(ids, mask)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    t3 = time.perf_counter()
    sps = a.steps * a.batch / (t3 - t2)
    print(f"pytorch train: {a.steps} steps of {a.batch} after {a.warmup} warm-up, "
          f"{torch.get_num_threads()} threads, mean padded length {tokens / (a.steps * a.batch):.1f}: "
          f"{t3 - t2:.3f} s, {sps:.1f} sentences/s (load {t1 - t0:.2f} s, loss {losses[0]:.4f} -> "
          f"{losses[-1]:.4f}), peak RSS {peak_rss_mib():.0f} MiB")
    print(f"RESULT engine=pytorch-train sentences={a.steps * a.batch} load_s={t1 - t0:.4f} "
          f"steady_s={t3 - t2:.4f} steady_sps={sps:.2f}")


def cmd_check(a):
    ref_dir = a.ref
    model = load_model(a.model).eval()
    seqs = read_ids(os.path.join(ref_dir, "ids.txt"))
    ref = np.load(os.path.join(ref_dir, "last.mean.npy"))
    out = np.zeros_like(ref)
    with torch.inference_mode():
        for s in range(0, len(seqs), 16):  # the reference's batches: file order, 16, padded to the longest
            ids, mask = pad_batch(seqs[s:s + 16])
            out[s:s + 16] = model(ids, mask).numpy()
    sorted_out = encode_all(model, seqs, a.batch)
    d = float(np.abs(out - ref).max())
    d2 = float(np.abs(sorted_out - ref).max())
    print(f"torch_bert vs {ref_dir}/last.mean.npy ({len(seqs)} sentences): max abs diff {d:.3g} "
          f"(reference batches of 16), {d2:.3g} (length-sorted batches of {a.batch}); "
          f"max |ref| {float(np.abs(ref).max()):.3g}")
    return 0 if max(d, d2) < a.tol else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    sub = ap.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("encode")
    e.add_argument("--model", required=True)
    e.add_argument("--ids", required=True, help="ids file, one sentence per line")
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--save", help="write the embeddings [N,C] in input order to this .npy")
    x = sub.add_parser("export-onnx")
    x.add_argument("--model", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--opset", type=int, default=14)
    t = sub.add_parser("train")
    t.add_argument("--model", required=True)
    t.add_argument("--ids", required=True, help="ids of the training sentences, in batch order")
    t.add_argument("--labels", help="tsv with a header whose last column is the label (row i = ids line i)")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--seed", type=int, default=42)
    c = sub.add_parser("check")
    c.add_argument("--model", default="../shared/models/minilm-l6-random")
    c.add_argument("--ref", default="../shared/reference/embeddings/minilm-l6-random")
    c.add_argument("--batch", type=int, default=32)
    c.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        rc = {"encode": cmd_encode, "export-onnx": cmd_export, "train": cmd_train, "check": cmd_check}[a.mode](a)
    except (OSError, ValueError) as err:
        print(f"torch_bert.py: {err}", file=sys.stderr)
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
