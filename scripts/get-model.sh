#!/bin/sh
# get-model.sh — `make model`: downloads sentence-transformers/all-MiniLM-L6-v2
# into models/all-MiniLM-L6-v2/ and verifies model.safetensors. Without a
# network it links the random-weight stand-in from ../shared instead, and
# says loudly that its embeddings mean nothing.
set -eu
cd "$(dirname "$0")/.."

REPO=https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main
DEST=models/all-MiniLM-L6-v2
SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
SIZE=90868376
FILES="config.json tokenizer_config.json special_tokens_map.json vocab.txt tokenizer.json
sentence_bert_config.json modules.json config_sentence_transformers.json 1_Pooling/config.json"
STANDIN=../shared/models/minilm-l6-random

verify() {
    [ -f "$DEST/model.safetensors" ] || return 1
    [ "$(stat -c %s "$DEST/model.safetensors")" = "$SIZE" ] || return 1
    echo "$SHA  $DEST/model.safetensors" | sha256sum -c --status
}

if [ ! -f "$DEST/RANDOM_WEIGHTS" ] && verify; then
    echo "get-model: $DEST is present and verified"
    exit 0
fi

tmp="$DEST.part"
rm -rf "$tmp"
mkdir -p "$tmp/1_Pooling"
ok=1
for f in $FILES model.safetensors; do
    if ! curl -fsSL --connect-timeout 10 --retry 2 -o "$tmp/$f" "$REPO/$f"; then
        ok=0
        break
    fi
done
if [ "$ok" = 1 ]; then
    if [ "$(stat -c %s "$tmp/model.safetensors")" != "$SIZE" ] ||
        ! echo "$SHA  $tmp/model.safetensors" | sha256sum -c --status; then
        echo "get-model: model.safetensors does not have the expected size and sha256; not installed" >&2
        rm -rf "$tmp"
        exit 1
    fi
    rm -rf "$DEST"
    mv "$tmp" "$DEST"
    echo "get-model: all-MiniLM-L6-v2 installed in $DEST (sha256 verified)"
    exit 0
fi
rm -rf "$tmp"
echo "get-model: cannot download from Hugging Face (no network?)" >&2
if [ -d "$STANDIN" ]; then
    rm -rf "$DEST"
    mkdir -p "$DEST"
    src="$(cd "$STANDIN" && pwd)"
    for f in "$src"/*; do ln -s "$f" "$DEST/"; done
    # the backbone warns at every run while this marker is there
    echo "random-weight stand-in linked from $src by scripts/get-model.sh" > "$DEST/RANDOM_WEIGHTS"
    cat >&2 <<MSG

  ***********************************************************************
  *  WARNING: $DEST now points to $STANDIN,
  *  a stand-in with the real model's exact layout but RANDOM WEIGHTS.
  *  Everything runs, parity and speed can be measured, but embeddings,
  *  similarities and STS scores MEAN NOTHING. Run 'make model' again
  *  on a machine with network access to get the real weights.
  ***********************************************************************

MSG
    exit 0
fi
echo "get-model: and no stand-in at $STANDIN either" >&2
exit 1
