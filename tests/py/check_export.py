#!/usr/bin/python3
"""check_export.py — an exported folder against the keys its formats
document, and its heads rebuilt in PyTorch.

  check_export.py FOLDER                 every file (TAP-free: prints one
                                         line per problem, exit 1 if any)
  check_export.py FOLDER heads EMB.npy PREDICTIONS.csv
                                         rebuild the heads from heads.json +
                                         heads.safetensors (docs/export.md's
                                         snippet), apply them to the pooled
                                         embeddings EMB.npy, compare labels
                                         and probabilities with the runner's

Documented keys (sentence-transformers' source, models/Pooling.py
config_keys, models/Transformer.py config_keys, SentenceTransformer.save
for modules.json and config_sentence_transformers.json; transformers'
BertConfig and safetensors loading in modeling_utils).
"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_bert import BERT_CONFIG_DEFAULTS, BertModel, read_safetensors  # noqa: E402

POOLING_KEYS = ["word_embedding_dimension", "pooling_mode_cls_token", "pooling_mode_mean_tokens",
                "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken", "include_prompt"]
TRANSFORMER_KEYS = {"max_seq_length", "do_lower_case"}
MODULE_KEYS = {"idx", "name", "path", "type"}
ST_TYPES = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize"}
problems = []


def need(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def load(folder, name):
    path = os.path.join(folder, name)
    if not need(os.path.isfile(path), f"{name}: missing"):
        return None
    with open(path) as f:
        return json.load(f)


def check_config(folder):
    cfg = load(folder, "config.json")
    if cfg is None:
        return None
    need(cfg.get("model_type") == "bert", "config.json: model_type is not 'bert'")
    need(cfg.get("architectures") == ["BertModel"], "config.json: architectures is not ['BertModel']")
    need("_name_or_path" not in cfg, "config.json: stale _name_or_path")
    for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size"):
        need(isinstance(cfg.get(k), int) and cfg[k] > 0, f"config.json: {k} missing or not a positive integer")
    unknown = set(cfg) - set(BERT_CONFIG_DEFAULTS) - {"model_type", "architectures", "id2label", "label2id",
                                                      "task_labels", "transformers_version", "gradient_checkpointing",
                                                      "torch_dtype"}
    need(not unknown, f"config.json: keys BertConfig does not know: {sorted(unknown)}")
    if "id2label" in cfg:
        ids = cfg["id2label"]
        need(sorted(int(k) for k in ids) == list(range(len(ids))), "config.json: id2label keys are not 0..n-1")
        need(cfg.get("label2id") == {v: int(k) for k, v in ids.items()}, "config.json: label2id is not id2label inverted")
    for task, maps in cfg.get("task_labels", {}).items():
        need(set(maps) == {"id2label", "label2id"}, f"config.json: task_labels.{task}: keys")
    return cfg


def check_weights(folder, cfg):
    tensors, meta = read_safetensors(os.path.join(folder, "model.safetensors"))
    need(meta.get("format") == "pt", "model.safetensors: __metadata__ format is not 'pt'")
    names = set(BertModel(cfg).state_dict())
    stray = sorted(set(tensors) - names - {"embeddings.position_ids"})
    need(not stray, f"model.safetensors: tensors BertModel does not have: {stray[:5]}")


def check_st(folder, cfg):
    mods = load(folder, "modules.json")
    if mods is None:
        return
    need([m.get("idx") for m in mods] == list(range(len(mods))), "modules.json: idx not 0..n-1")
    for m in mods:
        need(set(m) == MODULE_KEYS, f"modules.json: module keys {sorted(m)}")
        need(m.get("type") in ST_TYPES, f"modules.json: type {m.get('type')}")
        need(os.path.isdir(os.path.join(folder, m.get("path", ""))), f"modules.json: path {m.get('path')!r} is no folder")
    types = [m.get("type", "").rsplit(".", 1)[-1] for m in mods]
    need(types[:2] == ["Transformer", "Pooling"], f"modules.json: modules {types}")
    pool = load(folder, os.path.join(mods[1]["path"], "config.json")) if len(mods) > 1 else None
    if pool is not None:
        need(list(pool) == POOLING_KEYS, f"1_Pooling/config.json: keys {list(pool)}")
        need(pool.get("word_embedding_dimension") == cfg["hidden_size"], "1_Pooling: word_embedding_dimension")
        need(sum(bool(pool.get(k)) for k in POOLING_KEYS[1:7]) == 1, "1_Pooling: not exactly one pooling mode")
    sb = load(folder, "sentence_bert_config.json")
    if sb is not None:
        need(set(sb) <= TRANSFORMER_KEYS, f"sentence_bert_config.json: keys {sorted(sb)}")
        need(0 < sb.get("max_seq_length", 0) <= cfg["max_position_embeddings"],
             "sentence_bert_config.json: max_seq_length beyond max_position_embeddings")
    cst = load(folder, "config_sentence_transformers.json")
    if cst is not None:
        need(isinstance(cst.get("__version__", {}).get("sentence_transformers"), str), "config_st: __version__")
        need(cst.get("prompts") == {} and cst.get("default_prompt_name") is None, "config_st: prompts")
        need(cst.get("similarity_fn_name") in ("cosine", "dot", "euclidean", "manhattan"), "config_st: similarity")
    need(os.path.isfile(os.path.join(folder, "vocab.txt")), "vocab.txt: missing")
    return types


def build_heads(folder, read=read_safetensors):
    """docs/export.md's snippet: heads.json + heads.safetensors -> torch modules."""
    import torch
    from torch import nn
    spec = json.load(open(os.path.join(folder, "heads.json")))
    tensors = read(os.path.join(folder, spec["tensors_file"]))[0]
    heads = {}
    for t in spec["tasks"]:
        h, prefix = t["head"], f"heads.{t['name']}."
        mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        n_in = mine["0.weight"].shape[1]
        act = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}[h.get("activation", "gelu")]
        layers = []  # mlp: Linear, [LayerNorm], activation, Dropout per hidden layer; then the output Linear
        for width in (h.get("hidden", []) if h["plugin"] == "mlp" else []):
            layers += [nn.Linear(n_in, width)]
            layers += [nn.LayerNorm(width, eps=spec["layer_norm_eps"])] if h.get("layer_norm", True) else []
            layers += [act(), nn.Dropout(h.get("dropout", 0.0))]
            n_in = width
        seq = nn.Sequential(*layers, nn.Linear(n_in, len(t["labels"])))
        seq.load_state_dict(mine, strict=True)
        heads[t["name"]] = (seq.eval(), t["labels"])
    return heads


def check_heads(folder, emb_path, pred_path):
    import numpy as np
    import torch
    heads = build_heads(folder)
    emb = torch.from_numpy(np.load(emb_path))
    rows = list(csv.DictReader(open(pred_path, newline="")))
    for name, (seq, labels) in heads.items():
        with torch.no_grad():
            p = seq(emb).softmax(-1)
        for i, row in enumerate(rows):
            k = int(p[i].argmax())
            need(row[name] == labels[k], f"heads: row {i} {name}: {row[name]} vs {labels[k]}")
            need(abs(float(row[f"{name}_probability"]) - float(p[i, k])) <= 1e-4,
                 f"heads: row {i} {name}: probability {row[name + '_probability']} vs {float(p[i, k]):.5f}")


def main():
    folder = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "heads":
        check_heads(folder, sys.argv[3], sys.argv[4])
    else:
        cfg = check_config(folder)
        if cfg:
            check_weights(folder, cfg)
            types = check_st(folder, cfg)
            print("modules:", " ".join(types or []))
        spec = load(folder, "heads.json")
        if spec:
            need(spec.get("format") == "runner-heads", "heads.json: format")
            heads = read_safetensors(os.path.join(folder, "heads.safetensors"))[0]
            for t in spec["tasks"]:
                for name, shape in t["tensors"].items():
                    need(name in heads and list(heads[name].shape) == shape, f"heads.json: {name} {shape}")
    for p in problems:
        print("problem:", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
