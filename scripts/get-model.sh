#!/bin/sh
# get-model.sh — `make model`: installs sentence-transformers/all-MiniLM-L6-v2
# in models/all-MiniLM-L6-v2/ with model.safetensors sha256-verified.
#
# Where the files come from, in order (Hugging Face's conventions):
#   1. the Hugging Face cache: $HF_HUB_CACHE, else $HF_HOME/hub, else
#      ~/.cache/huggingface/hub (models--<org>--<name>/snapshots/*/), when
#      a snapshot there holds a verified model.safetensors;
#   2. a download from $HF_ENDPOINT (default https://huggingface.co, or a
#      mirror), unless HF_HUB_OFFLINE=1: files go to DEST.part, which is
#      removed on any failure or interruption, and becomes DEST only once
#      model.safetensors has the expected sha256 (a wrong one is refused);
#   3. without network (or offline, with nothing cached): the random-weight
#      stand-in ../shared/models/minilm-l6-random is linked, with a loud
#      warning (never after a checksum mismatch: that is an error).
# For a mirror of another model or for tests: RUNNER_MODEL_REPO (org/name),
# RUNNER_MODEL_SHA256, RUNNER_MODEL_DIR (destination), RUNNER_MODEL_STANDIN.
set -eu
cd "$(dirname "$0")/.."

REPO_ID=${RUNNER_MODEL_REPO:-sentence-transformers/all-MiniLM-L6-v2}
ENDPOINT=${HF_ENDPOINT:-https://huggingface.co}
DEST=${RUNNER_MODEL_DIR:-models/all-MiniLM-L6-v2}
SHA=${RUNNER_MODEL_SHA256:-53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db}
STANDIN=${RUNNER_MODEL_STANDIN:-../shared/models/minilm-l6-random}
FILES="config.json tokenizer_config.json special_tokens_map.json vocab.txt tokenizer.json
sentence_bert_config.json modules.json config_sentence_transformers.json 1_Pooling/config.json"
CACHE=${HF_HUB_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}/hub}

case "${HF_HUB_OFFLINE:-0}" in 1 | true | TRUE | yes | YES | on | ON) OFFLINE=1 ;; *) OFFLINE=0 ;; esac

sha_ok() { # folder
    [ -f "$1/model.safetensors" ] && echo "$SHA  $1/model.safetensors" | sha256sum -c --status
}

if [ ! -f "$DEST/RANDOM_WEIGHTS" ] && sha_ok "$DEST"; then
    echo "get-model: $DEST is present and verified"
    exit 0
fi

tmp="$DEST.part"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

install_tmp() { # how
    rm -rf "$DEST"
    mv "$tmp" "$DEST"
    echo "get-model: $REPO_ID installed in $DEST from $1 (sha256 verified)"
    exit 0
}

# 1. the Hugging Face cache
snapshots="$CACHE/models--$(echo "$REPO_ID" | sed 's|/|--|g')/snapshots"
for snap in "$snapshots"/*; do
    if [ -d "$snap" ] && sha_ok "$snap"; then
        rm -rf "$tmp"
        mkdir -p "$(dirname "$DEST")"
        cp -rL "$snap" "$tmp"
        install_tmp "the Hugging Face cache ($snap)"
    fi
done

# 2. download
if [ "$OFFLINE" = 1 ]; then
    echo "get-model: HF_HUB_OFFLINE is set and $CACHE holds no verified $REPO_ID: not downloading" >&2
else
    rm -rf "$tmp"
    mkdir -p "$tmp/1_Pooling"
    ok=1
    for f in $FILES model.safetensors; do
        if ! curl -fsSL --connect-timeout 10 --speed-limit 1 --speed-time 60 --retry 2 -o "$tmp/$f" "$ENDPOINT/$REPO_ID/resolve/main/$f"; then
            echo "get-model: $ENDPOINT/$REPO_ID/resolve/main/$f: download failed" >&2
            ok=0
            break
        fi
    done
    if [ "$ok" = 1 ]; then
        if ! sha_ok "$tmp"; then
            echo "get-model: $ENDPOINT/$REPO_ID: model.safetensors does not have the expected sha256 $SHA;" \
                "not installed" >&2
            exit 1
        fi
        install_tmp "$ENDPOINT"
    fi
    rm -rf "$tmp"
    echo "get-model: cannot download from $ENDPOINT (no network?)" >&2
fi

# 3. the stand-in
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
