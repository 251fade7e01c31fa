"""tokenize_ref.py — the Python reference for bench/tokenize: BERT's
BasicTokenizer + WordpieceTokenizer as in google-research/bert
tokenization.py (what Hugging Face's BertTokenizer does), plus literal
special tokens split out first, as Hugging Face's tokenizers do. Pure
Python (no `tokenizers` package here), run with /usr/bin/python3.

    tokenize_ref.py VOCAB FILE [--tsv] [--max-len 256] [--out IDS] [--runs 1]

FILE: one sentence per line (bytes; '\\n' ends a line, a '\\r' before it is
dropped; invalid UTF-8 decoded with errors="replace"), or with --tsv the
first column of a tab-separated file with a header line. Prints one line:
    python: sentences=N bytes=B seconds=S (median of --runs)
--out writes the ids of sentence i on line i, [CLS] ... [SEP].
"""
import argparse
import re
import statistics
import sys
import time
import unicodedata


def is_whitespace(ch):
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_chinese_char(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class BasicTokenizer:
    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        text = self._clean_text(text)
        text = self._tokenize_chinese_chars(text)
        split_tokens = []
        for token in text.split():
            if self.do_lower_case:
                token = token.lower()
                token = self._run_strip_accents(token)
            split_tokens.extend(self._run_split_on_punc(token))
        return " ".join(split_tokens).split()

    def _run_strip_accents(self, text):
        text = unicodedata.normalize("NFD", text)
        return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")

    def _run_split_on_punc(self, text):
        output, start_new_word = [], True
        for ch in text:
            if is_punctuation(ch):
                output.append([ch])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(ch)
        return ["".join(x) for x in output]

    def _tokenize_chinese_chars(self, text):
        out = []
        for ch in text:
            if is_chinese_char(ord(ch)):
                out += [" ", ch, " "]
            else:
                out.append(ch)
        return "".join(out)

    def _clean_text(self, text):
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or is_control(ch):
                continue
            out.append(" " if is_whitespace(ch) else ch)
        return "".join(out)


class WordpieceTokenizer:
    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, token):
        chars = list(token)
        if len(chars) > self.max_input_chars_per_word:
            return [self.unk_token]
        is_bad, start, sub_tokens = False, 0, []
        while start < len(chars):
            end, cur_substr = len(chars), None
            while start < end:
                substr = "".join(chars[start:end])
                if start > 0:
                    substr = "##" + substr
                if substr in self.vocab:
                    cur_substr = substr
                    break
                end -= 1
            if cur_substr is None:
                is_bad = True
                break
            sub_tokens.append(cur_substr)
            start = end
        return [self.unk_token] if is_bad else sub_tokens


class BertTokenizer:
    SPECIALS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")

    def __init__(self, vocab_file, do_lower_case=True, max_len=256):
        with open(vocab_file, encoding="utf-8") as f:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        self.basic = BasicTokenizer(do_lower_case)
        self.wordpiece = WordpieceTokenizer(self.vocab)
        self.max_len = max_len
        specials = [t for t in self.SPECIALS if t in self.vocab]
        self.special_re = re.compile("(" + "|".join(re.escape(t) for t in specials) + ")")

    def encode(self, text):
        pieces = []
        for i, part in enumerate(self.special_re.split(text)):
            if i % 2:
                pieces.append(part)
                continue
            for token in self.basic.tokenize(part):
                pieces.extend(self.wordpiece.tokenize(token))
        ids = [self.vocab[p] for p in pieces[: self.max_len - 2]]
        return [self.vocab["[CLS]"]] + ids + [self.vocab["[SEP]"]]


def read_sentences(path, tsv):
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
    if tsv:
        lines = [l.split(b"\t")[0] for l in lines[1:]]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vocab")
    ap.add_argument("file")
    ap.add_argument("--tsv", action="store_true")
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--out")
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    tok = BertTokenizer(a.vocab, max_len=a.max_len)
    raw = read_sentences(a.file, a.tsv)
    times, ids = [], None
    for _ in range(a.runs):
        t0 = time.perf_counter()
        ids = [tok.encode(s.decode("utf-8", errors="replace")) for s in raw]
        times.append(time.perf_counter() - t0)
    if a.out:
        with open(a.out, "w") as f:
            for row in ids:
                f.write(" ".join(map(str, row)) + "\n")
    print(f"python: sentences={len(raw)} bytes={sum(len(s) for s in raw)} "
          f"seconds={statistics.median(times):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
