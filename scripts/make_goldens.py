#!/usr/bin/python3
"""make_goldens.py — reference values for tests/grad.c, computed by PyTorch
autograd in float32 (run with /usr/bin/python3: Debian's python3-torch).

Writes, deterministically (fixed seeds; same bytes on every run with the
same torch build):

  tests/goldens/tiny-bert/     a small random BERT as a Hugging Face folder:
                               config.json, model.safetensors, vocab.txt
  tests/goldens/bert.safetensors
      input.ids, input.type_ids, input.mask  (B,T) int32, right padding
      hidden.<l>   (B,T,C)  l = 0 (embedding output) .. L, eval mode
      R.<l>        (B,T,C)  fixed random weights of the loss, 0 on padding
      dhidden.<l>  (B,T,C)  dL/d hidden[l] (total: R_l plus what flows back
                            from the layers above)
      grad.<name>           dL/d parameter, for every tensor of the model
    with the loss  L = sum_l sum_{b,t,c} hidden[l][b,t,c] * R_l[b,t,c].
    R_l is zero on padding, so the states of padding tokens (which a packed
    implementation never computes) take no part in L.
  tests/goldens/heads.safetensors, for each case (linear, mlp, mlp_relu,
    mlp_tanh, token_linear):
      <case>.x (N,D), <case>.param.<name>, <case>.logits (N,K),
      <case>.dlogits (N,K) = G, <case>.grad.<name>, <case>.dx (N,D)
    with the loss L = sum(logits * G); heads in eval numerics (dropout off).
  tests/goldens/mlm.safetensors, BERT's masked-LM prediction head
    (BertLMPredictionHead: dense + erf GELU + LayerNorm eps 1e-12, then a
    decoder tied to a given embedding matrix E (V,C) plus a bias (V)),
    N = 12 rows, C = 16, V = 50:
      mlm.x (N,C), mlm.labels (N) int32 (rows 3 and 8 are -1: ignored),
      mlm.embeddings (V,C), mlm.param.<name>, mlm.logits (N,V),
      mlm.loss (1), mlm.dlogits (N,V), mlm.grad.<name>,
      mlm.grad.embeddings (V,C), mlm.dx (N,C)
    with the loss L = cross_entropy(logits, labels, ignore_index=-1), the
    mean over the labelled rows (the masked_lm loss).
  tests/goldens/manifest.json  generator version, torch version, seeds,
    shapes and the sha256 of every file.

Parameter names of the heads mirror a torch nn.Sequential: mlp is
[Linear, LayerNorm?, activation, Dropout] per hidden layer then Linear, so
with LayerNorm the Linear layers are 0, 4, 8, ... and the LayerNorms 1, 5, ...;
without it the Linears are 0, 3, 6, .... linear and token_linear are one
Linear "0" (their dropout acts on the input).

Regenerate:  /usr/bin/python3 scripts/make_goldens.py   (from the repo root)
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

GENERATOR = "make_goldens.py"
VERSION = 1
OUT = os.path.join("tests", "goldens")

CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 64,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 32,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}

LAYER_TENSORS = [  # Hugging Face names inside encoder.layer.<i>., and shapes
    ("attention.self.query.weight", "CC"), ("attention.self.query.bias", "C"),
    ("attention.self.key.weight", "CC"), ("attention.self.key.bias", "C"),
    ("attention.self.value.weight", "CC"), ("attention.self.value.bias", "C"),
    ("attention.output.dense.weight", "CC"), ("attention.output.dense.bias", "C"),
    ("attention.output.LayerNorm.weight", "C"), ("attention.output.LayerNorm.bias", "C"),
    ("intermediate.dense.weight", "FC"), ("intermediate.dense.bias", "F"),
    ("output.dense.weight", "CF"), ("output.dense.bias", "C"),
    ("output.LayerNorm.weight", "C"), ("output.LayerNorm.bias", "C"),
]

SEED_MODEL, SEED_INPUT, SEED_HEADS, SEED_MLM = 1234, 5678, 4321, 2468


# ---- safetensors writer -----------------------------------------------------

def write_safetensors(path, tensors, meta):
    """tensors: list of (name, numpy array float32 or int32), in file order."""
    header, blobs, off = {}, [], 0
    dtypes = {np.dtype("float32"): "F32", np.dtype("int32"): "I32"}
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data area starts 8-byte aligned
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def write_text(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


# ---- the tiny BERT ------------------------------------------------------------

def make_weights(cfg):
    """Random weights scaled so every non-linearity works away from its
    linear regime: attention far from uniform, GELU curved, LayerNorm
    weights and biases not 1 and 0."""
    g = torch.Generator().manual_seed(SEED_MODEL)
    C, Fd = cfg["hidden_size"], cfg["intermediate_size"]
    dims = {"C": C, "F": Fd}

    def randn(*shape, std):
        return torch.randn(*shape, generator=g) * std

    w = {
        "embeddings.word_embeddings.weight": randn(cfg["vocab_size"], C, std=0.5),
        "embeddings.position_embeddings.weight": randn(cfg["max_position_embeddings"], C, std=0.5),
        "embeddings.token_type_embeddings.weight": randn(cfg["type_vocab_size"], C, std=0.5),
        "embeddings.LayerNorm.weight": 1 + randn(C, std=0.1),
        "embeddings.LayerNorm.bias": randn(C, std=0.1),
    }
    for i in range(cfg["num_hidden_layers"]):
        for name, shape in LAYER_TENSORS:
            dim = [dims[s] for s in shape]
            if name.endswith("LayerNorm.weight"):
                t = 1 + randn(*dim, std=0.1)
            elif len(dim) == 2:
                t = randn(*dim, std=1.0 / math.sqrt(dim[1]))
            else:
                t = randn(*dim, std=0.1)
            w[f"encoder.layer.{i}.{name}"] = t
    return w


def bert_forward(cfg, w, ids, type_ids, mask):
    """Hugging Face BertModel in eval mode (no dropout): every hidden state."""
    C, H, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    B, T = ids.shape
    D = C // H
    pos = torch.arange(T).unsqueeze(0).expand(B, T)
    x = (F.embedding(ids, w["embeddings.word_embeddings.weight"])
         + F.embedding(pos, w["embeddings.position_embeddings.weight"])
         + F.embedding(type_ids, w["embeddings.token_type_embeddings.weight"]))  # (B,T,C)
    x = F.layer_norm(x, (C,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    hidden = [x]
    add_mask = (1.0 - mask[:, None, None, :].float()) * -10000.0  # (B,1,1,T), as HF 4.x

    def heads(y):  # (B,T,C) -> (B,H,T,D)
        return y.view(B, T, H, D).permute(0, 2, 1, 3)

    for i in range(cfg["num_hidden_layers"]):
        p = lambda n: w[f"encoder.layer.{i}.{n}"]
        q = heads(F.linear(x, p("attention.self.query.weight"), p("attention.self.query.bias")))
        k = heads(F.linear(x, p("attention.self.key.weight"), p("attention.self.key.bias")))
        v = heads(F.linear(x, p("attention.self.value.weight"), p("attention.self.value.bias")))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + add_mask, dim=-1)
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(B, T, C)
        a = F.linear(ctx, p("attention.output.dense.weight"), p("attention.output.dense.bias"))
        x = F.layer_norm(x + a, (C,), p("attention.output.LayerNorm.weight"),
                         p("attention.output.LayerNorm.bias"), eps)
        h = F.gelu(F.linear(x, p("intermediate.dense.weight"), p("intermediate.dense.bias")))
        h = F.linear(h, p("output.dense.weight"), p("output.dense.bias"))
        x = F.layer_norm(x + h, (C,), p("output.LayerNorm.weight"), p("output.LayerNorm.bias"), eps)
        hidden.append(x)
    return hidden


VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
         + "the a of to and in is it that was for on with as by at from this be are".split()
         + "cat dog sat mat ran fast slow red blue green big small old new good bad".split()
         + "##s ##ed ##ing ##ly ##er ##est un re pre , . ! ? ' - one two three four five six seven eight".split())


def make_bert_goldens():
    cfg = CONFIG
    assert len(VOCAB) == cfg["vocab_size"], len(VOCAB)
    w = make_weights(cfg)
    folder = os.path.join(OUT, "tiny-bert")
    os.makedirs(folder, exist_ok=True)
    write_text(os.path.join(folder, "config.json"), json.dumps(cfg, indent=2) + "\n")
    write_text(os.path.join(folder, "vocab.txt"), "\n".join(VOCAB) + "\n")
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      [(n, t.numpy()) for n, t in w.items()], {"format": "pt"})

    # inputs: lengths 7, 5, 3 with right padding; sentence 0 is a pair (type 1)
    g = torch.Generator().manual_seed(SEED_INPUT)
    B, T, L, C = 3, 7, cfg["num_hidden_layers"], cfg["hidden_size"]
    lengths = [7, 5, 3]
    ids = torch.zeros(B, T, dtype=torch.long)
    type_ids = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, 0], ids[b, n - 1] = 2, 3
        ids[b, 1:n - 1] = torch.randint(5, cfg["vocab_size"], (n - 2,), generator=g)
        mask[b, :n] = 1
    type_ids[0, 4:7] = 1
    R = [torch.randn(B, T, C, generator=g) * mask[:, :, None] for _ in range(L + 1)]

    params = {n: t.clone().requires_grad_(True) for n, t in w.items()}
    hidden = bert_forward(cfg, params, ids, type_ids, mask)
    for h in hidden:
        h.retain_grad()
    loss = sum((h * r).sum() for h, r in zip(hidden, R))
    loss.backward()

    i32 = lambda t: t.numpy().astype(np.int32)
    out = [("input.ids", i32(ids)), ("input.type_ids", i32(type_ids)), ("input.mask", i32(mask))]
    out += [(f"hidden.{l}", h.detach().numpy()) for l, h in enumerate(hidden)]
    out += [(f"R.{l}", r.numpy()) for l, r in enumerate(R)]
    out += [(f"dhidden.{l}", h.grad.numpy()) for l, h in enumerate(hidden)]
    out += [(f"grad.{n}", p.grad.numpy()) for n, p in params.items()]
    meta = {"generator": GENERATOR, "version": str(VERSION), "torch": torch.__version__,
            "loss": "sum_l sum(hidden[l] * R.l)", "model": "tiny-bert"}
    write_safetensors(os.path.join(OUT, "bert.safetensors"), out, meta)
    return {"B": B, "T": T, "lengths": lengths, "loss": float(loss),
            "tensors": {n: list(a.shape) for n, a in out}}


# ---- heads ---------------------------------------------------------------------

ACT = {"gelu": F.gelu, "relu": F.relu, "tanh": torch.tanh}

HEAD_CASES = [  # name, plugin, N, hidden sizes, activation, layer_norm
    ("linear", "linear", 6, [], None, False),
    ("mlp", "mlp", 6, [16, 12], "gelu", True),
    ("mlp_relu", "mlp", 6, [16], "relu", False),
    ("mlp_tanh", "mlp", 6, [24, 8], "tanh", True),
    ("token_linear", "token_linear", 21, [], None, False),
]
HEAD_D, HEAD_K = 32, 5


def head_params(g, hidden, layer_norm):
    """nn.Sequential names -> tensors, PyTorch's default Linear init, and
    LayerNorm weights and biases moved away from 1 and 0."""
    p, idx, din = {}, 0, HEAD_D
    sizes = hidden + [HEAD_K]
    for j, h in enumerate(sizes):
        bound = 1.0 / math.sqrt(din)
        p[f"{idx}.weight"] = (torch.rand(h, din, generator=g) * 2 - 1) * bound
        p[f"{idx}.bias"] = (torch.rand(h, generator=g) * 2 - 1) * bound
        if j == len(sizes) - 1:
            break
        if layer_norm:
            p[f"{idx + 1}.weight"] = 1 + torch.randn(h, generator=g) * 0.1
            p[f"{idx + 1}.bias"] = torch.randn(h, generator=g) * 0.1
        idx += 4 if layer_norm else 3
        din = h
    return p


def head_forward(p, x, hidden, act, layer_norm):
    idx = 0
    for h in hidden:
        x = F.linear(x, p[f"{idx}.weight"], p[f"{idx}.bias"])
        if layer_norm:
            x = F.layer_norm(x, (h,), p[f"{idx + 1}.weight"], p[f"{idx + 1}.bias"], 1e-5)
        x = ACT[act](x)
        idx += 4 if layer_norm else 3
    return F.linear(x, p[f"{idx}.weight"], p[f"{idx}.bias"])


def make_head_goldens():
    g = torch.Generator().manual_seed(SEED_HEADS)
    out, cases = [], {}
    for name, plugin, N, hidden, act, ln in HEAD_CASES:
        p = {k: t.requires_grad_(True) for k, t in head_params(g, hidden, ln).items()}
        x = torch.randn(N, HEAD_D, generator=g).requires_grad_(True)
        G = torch.randn(N, HEAD_K, generator=g)
        logits = head_forward(p, x, hidden, act, ln)
        (logits * G).sum().backward()
        out.append((f"{name}.x", x.detach().numpy()))
        out += [(f"{name}.param.{k}", t.detach().numpy()) for k, t in p.items()]
        out += [(f"{name}.logits", logits.detach().numpy()), (f"{name}.dlogits", G.numpy())]
        out += [(f"{name}.grad.{k}", t.grad.numpy()) for k, t in p.items()]
        out.append((f"{name}.dx", x.grad.numpy()))
        cases[name] = {"plugin": plugin, "N": N, "D": HEAD_D, "K": HEAD_K, "hidden": hidden,
                       "activation": act, "layer_norm": ln, "params": list(p)}
    meta = {"generator": GENERATOR, "version": str(VERSION), "torch": torch.__version__,
            "loss": "sum(logits * dlogits)"}
    write_safetensors(os.path.join(OUT, "heads.safetensors"), out, meta)
    return {"cases": cases, "tensors": {n: list(a.shape) for n, a in out}}


# ---- the masked-LM head ---------------------------------------------------------

MLM_N, MLM_C, MLM_V = 12, 16, 50
MLM_IGNORED = [3, 8]


def mlm_head_forward(p, E, x):
    """Hugging Face BertLMPredictionHead with the decoder weight tied to E."""
    h = F.linear(x, p["transform.dense.weight"], p["transform.dense.bias"])
    h = F.layer_norm(F.gelu(h), (MLM_C,), p["transform.LayerNorm.weight"],
                     p["transform.LayerNorm.bias"], 1e-12)
    return F.linear(h, E, p["bias"])


def make_mlm_goldens():
    g = torch.Generator().manual_seed(SEED_MLM)
    N, C, V = MLM_N, MLM_C, MLM_V
    # scaled like the tiny BERT: GELU curved, LayerNorm off 1 and 0, logits spread
    p = {
        "transform.dense.weight": torch.randn(C, C, generator=g) / math.sqrt(C),
        "transform.dense.bias": torch.randn(C, generator=g) * 0.1,
        "transform.LayerNorm.weight": 1 + torch.randn(C, generator=g) * 0.1,
        "transform.LayerNorm.bias": torch.randn(C, generator=g) * 0.1,
        "bias": torch.randn(V, generator=g) * 0.1,
    }
    p = {k: t.requires_grad_(True) for k, t in p.items()}
    E = (torch.randn(V, C, generator=g) * 0.5).requires_grad_(True)
    x = torch.randn(N, C, generator=g).requires_grad_(True)
    labels = torch.randint(0, V, (N,), generator=g)
    labels[MLM_IGNORED] = -1
    logits = mlm_head_forward(p, E, x)
    logits.retain_grad()
    loss = F.cross_entropy(logits, labels, ignore_index=-1)
    loss.backward()
    out = [("mlm.x", x.detach().numpy()), ("mlm.labels", labels.numpy().astype(np.int32)),
           ("mlm.embeddings", E.detach().numpy())]
    out += [(f"mlm.param.{k}", t.detach().numpy()) for k, t in p.items()]
    out += [("mlm.logits", logits.detach().numpy()), ("mlm.loss", loss.detach().reshape(1).numpy()),
            ("mlm.dlogits", logits.grad.numpy())]
    out += [(f"mlm.grad.{k}", t.grad.numpy()) for k, t in p.items()]
    out += [("mlm.grad.embeddings", E.grad.numpy()), ("mlm.dx", x.grad.numpy())]
    meta = {"generator": GENERATOR, "version": str(VERSION), "torch": torch.__version__,
            "loss": "cross_entropy(logits, labels, ignore_index=-1)"}
    write_safetensors(os.path.join(OUT, "mlm.safetensors"), out, meta)
    return {"N": N, "C": C, "V": V, "ignored_rows": MLM_IGNORED, "params": list(p),
            "loss": float(loss), "tensors": {n: list(a.shape) for n, a in out}}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    if not os.path.isdir("scripts") or not os.path.isdir("tests"):
        sys.exit("make_goldens.py: run from the repository root")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    bert = make_bert_goldens()
    heads = make_head_goldens()
    mlm = make_mlm_goldens()
    files = ["tiny-bert/config.json", "tiny-bert/vocab.txt", "tiny-bert/model.safetensors",
             "bert.safetensors", "heads.safetensors", "mlm.safetensors"]
    manifest = {
        "generator": GENERATOR, "version": VERSION, "torch": torch.__version__,
        "numpy": np.__version__, "dtype": "float32",
        "seeds": {"model": SEED_MODEL, "input": SEED_INPUT, "heads": SEED_HEADS, "mlm": SEED_MLM},
        "bert": {"folder": "tiny-bert", "config": CONFIG, **bert},
        "heads": heads,
        "mlm": mlm,
        "files": {f: sha256(os.path.join(OUT, f)) for f in files},
    }
    write_text(os.path.join(OUT, "manifest.json"), json.dumps(manifest, indent=1) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in files)
    print(f"goldens written to {OUT}/ ({total} bytes)")


if __name__ == "__main__":
    main()
