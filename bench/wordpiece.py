"""Small pure-Python BERT WordPiece tokenizer (uncased), used by the benchmark
harness only when the runner's own tokenizer (pipelines/tokenize.cfg) is not
available. Output format is the runner's ids.txt: the ids of sentence i on line
i, `[CLS] pieces... [SEP]`, space-separated, pieces cut to max_len - 2.

    /usr/bin/python3 bench/wordpiece.py VOCAB.txt SENTENCES.txt OUT_IDS.txt [--max-len 256]
    /usr/bin/python3 bench/wordpiece.py --check   # compare with ../shared/reference/tokenizer
"""
import argparse
import sys
import unicodedata


def _is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_whitespace(ch):
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    def __init__(self, vocab_path):
        with open(vocab_path, encoding="utf-8") as f:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]
        self.specials = {t for t in ("[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]") if t in self.vocab}

    def _basic(self, text):
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                out.append(" ")
            elif _is_cjk(cp):
                out.append(" " + ch + " ")
            else:
                out.append(ch)
        words = []
        for word in "".join(out).split():
            if word in self.specials:
                words.append(word)
                continue
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            cur = ""
            for ch in word:
                if _is_punctuation(ch):
                    if cur:
                        words.append(cur)
                    words.append(ch)
                    cur = ""
                else:
                    cur += ch
            if cur:
                words.append(cur)
        return words

    def _pieces(self, word):
        if word in self.specials:
            return [self.vocab[word]]
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    found = self.vocab[sub]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text, max_len=256):
        ids = []
        for w in self._basic(text):
            ids.extend(self._pieces(w))
        return [self.cls] + ids[: max_len - 2] + [self.sep]


def read_lines(path):
    """Lines of a text file without their end-of-line (\\n only, like the runner)."""
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line[:-1] if line.endswith("\n") else line for line in f]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vocab", nargs="?")
    ap.add_argument("sentences", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--check", action="store_true", help="compare with the reference tokenizer ids")
    a = ap.parse_args()
    if a.check:
        tok = WordPiece("../shared/models/minilm-l6-random/vocab.txt")
        sents = read_lines("../shared/reference/tokenizer/sentences.txt")
        ref = read_lines("../shared/reference/tokenizer/ids.txt")
        bad = [i for i, (s, r) in enumerate(zip(sents, ref))
               if " ".join(map(str, tok.encode(s, a.max_len))) != r]
        print(f"wordpiece: {len(sents) - len(bad)}/{len(sents)} sentences identical to the reference"
              + (f"; first differing line {bad[0] + 1}" if bad else ""))
        return 1 if bad else 0
    if not (a.vocab and a.sentences and a.out):
        ap.error("VOCAB SENTENCES OUT are required (or --check)")
    tok = WordPiece(a.vocab)
    with open(a.out, "w") as f:
        for s in read_lines(a.sentences):
            f.write(" ".join(map(str, tok.encode(s, a.max_len))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
