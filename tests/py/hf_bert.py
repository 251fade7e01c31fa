#!/usr/bin/python3
"""hf_bert.py — loads an exported folder the way Hugging Face transformers'
BertModel does, without transformers (not packaged for Debian): config.json
through BertConfig's keys and defaults, model.safetensors parsed by hand
(u64 header length, JSON header, raw little-endian tensors) and checked as
transformers checks it ("format": "pt" metadata), the weights loaded into a
module tree with BertModel's exact parameter names (load_state_dict: every
tensor of the file must land; only pooler.* may be missing, as transformers
then initialises it and warns). Then mean-pools the last layer over the
attention mask for the token ids of the runner's ids.txt, and compares with
the runner's embeddings.npy.

usage: hf_bert.py FOLDER IDS.txt EMBEDDINGS.npy [TOLERANCE]
prints "max_abs_diff X" and exits 0 when X <= TOLERANCE (default 1e-4).
"""
import json
import math
import struct
import sys

import numpy as np
import torch
from torch import nn

# transformers.BertConfig's arguments and defaults (configuration_bert.py)
BERT_CONFIG_DEFAULTS = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
    "position_embedding_type": "absolute", "use_cache": True, "classifier_dropout": None,
}
DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "F64": (np.float64, 8), "I64": (np.int64, 8),
          "I32": (np.int32, 4)}


def load_config(folder):
    with open(f"{folder}/config.json") as f:
        raw = json.load(f)
    # AutoConfig.from_pretrained(folder) picks the class by model_type
    if raw.get("model_type") != "bert":
        raise SystemExit(f"config.json: model_type {raw.get('model_type')!r}, AutoConfig needs 'bert'")
    cfg = dict(BERT_CONFIG_DEFAULTS)
    cfg.update(raw)
    if "id2label" in raw:  # PretrainedConfig turns the keys into ints; num_labels follows
        cfg["id2label"] = {int(k): v for k, v in raw["id2label"].items()}
    return cfg


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    # transformers' modeling_utils: metadata "format" must be one it knows
    if meta.get("format") not in ("pt", "tf", "flax", "mlx"):
        raise SystemExit(f"{path}: __metadata__ format {meta.get('format')!r}: transformers refuses the file")
    tensors = {}
    for name, info in header.items():
        dt, size = DTYPES[info["dtype"]]
        a, b = info["data_offsets"]
        if b - a != math.prod(info["shape"]) * size:
            raise SystemExit(f"{path}: {name}: data_offsets do not match shape")
        arr = np.frombuffer(data, dtype=dt, count=(b - a) // size, offset=8 + n + a).reshape(info["shape"])
        tensors[name] = torch.from_numpy(arr.astype(np.float32 if dt != np.int64 else np.int64))
    return tensors, meta


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(torch.zeros_like(ids))
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["hidden_size"]
        self.h = c["num_attention_heads"]
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)

    def forward(self, x, mask):
        B, T, C = x.shape
        split = lambda t: t.view(B, T, self.h, C // self.h).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        s = q @ k.transpose(-1, -2) / math.sqrt(C // self.h)
        s = s + (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        return (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)


class DenseLN(nn.Module):  # BertSelfOutput / BertOutput
    def __init__(self, c, n_in):
        super().__init__()
        self.dense = nn.Linear(n_in, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = SelfAttention(c)
        self.attention.output = DenseLN(c, c["hidden_size"])
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.output = DenseLN(c, c["intermediate_size"])

    def forward(self, x, mask):
        a = self.attention.output(self.attention.self(x, mask), x)
        return self.output(nn.functional.gelu(self.intermediate.dense(a)), a)


class BertModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, ids, mask):
        x = self.embeddings(ids)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x


def main():
    folder, ids_path, npy_path = sys.argv[1:4]
    tol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
    cfg = load_config(folder)
    if cfg["hidden_act"] != "gelu" or cfg["position_embedding_type"] != "absolute":
        raise SystemExit("config.json: this reference implements gelu and absolute positions only")
    tensors, _ = read_safetensors(f"{folder}/model.safetensors")
    tensors = {k: v for k, v in tensors.items() if k != "embeddings.position_ids"}
    model = BertModel(cfg).eval()
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or any(not k.startswith("pooler.") for k in missing):
        raise SystemExit(f"model.safetensors: unexpected {unexpected}, missing {missing}")
    rows = [[int(t) for t in line.split()] for line in open(ids_path) if line.strip()]
    T = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (T - len(r)) for r in rows])
    with torch.no_grad():
        h = model(ids, mask)
        emb = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    ours = torch.from_numpy(np.load(npy_path))
    diff = (emb - ours).abs().max().item() if ours.shape == emb.shape else float("inf")
    print(f"max_abs_diff {diff:.3g} over {tuple(emb.shape)}")
    sys.exit(0 if diff <= tol else 1)


if __name__ == "__main__":
    main()
