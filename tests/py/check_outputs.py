#!/usr/bin/python3
"""check_outputs.py — the runner's outputs read by Python's csv and json, as
pandas and jq users would.

  check_outputs.py csv PREDICTIONS.csv INPUT       id 0..n-1, text = input lines
  check_outputs.py jsonl PREDICTIONS.jsonl INPUT   the same, one object a line
  check_outputs.py embeddings STDOUT INPUT DIM     --jsonl embeddings
  check_outputs.py matrix SIMILARITY.csv N         header id,0..N-1, N rows
  check_outputs.py fields FILE.csv FIELDS.json     rows equal the JSON list of lists
  check_outputs.py strings FILE.jsonl STRINGS.json each line a JSON string equal to the list's
"""
import csv
import json
import sys



def input_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    out = text.split("\n")
    if out and out[-1] == "":
        out.pop()
    return [l[:-1] if l.endswith("\r") else l for l in out]


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "csv":
        rows = list(csv.DictReader(open(path, encoding="utf-8", newline="")))
        want = input_lines(sys.argv[3])
        assert [r["id"] for r in rows] == [str(i) for i in range(len(want))], "ids"
        assert [r["text"] for r in rows] == want, f"texts {[r['text'] for r in rows]} != {want}"
    elif mode == "jsonl":
        rows = [json.loads(l) for l in open(path, encoding="utf-8")]
        want = input_lines(sys.argv[3])
        assert [r["id"] for r in rows] == list(range(len(want))), "ids"
        assert [r["text"] for r in rows] == want, "texts"
    elif mode == "embeddings":
        rows = [json.loads(l) for l in open(path, encoding="utf-8")]
        want = input_lines(sys.argv[3])
        assert [r["text"] for r in rows] == want, "texts"
        assert all(len(r["embedding"]) == int(sys.argv[4]) for r in rows), "dims"
    elif mode == "matrix":
        rows = list(csv.reader(open(path, newline="")))
        n = int(sys.argv[3])
        assert rows[0] == ["id"] + [str(i) for i in range(n)], f"header {rows[0]}"
        assert len(rows) == n + 1 and all(len(r) == n + 1 for r in rows), "shape"
    elif mode == "fields":
        rows = list(csv.reader(open(path, encoding="utf-8", newline="")))
        assert rows == json.load(open(sys.argv[3], encoding="utf-8")), f"{rows}"
    elif mode == "strings":
        got = [json.loads(l) for l in open(path, encoding="utf-8")]
        assert got == json.load(open(sys.argv[3], encoding="utf-8")), f"{got}"
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
