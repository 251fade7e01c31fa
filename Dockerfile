# Dockerfile — builds runner on Debian bookworm with the same install
# script CI uses; `docker run IMAGE pipelines/task1.cfg` runs a pipeline.
# Mount models and datasets (e.g. -v $PWD/../shared:/shared and
# --set model=/shared/models/...), or run `make model` inside.
FROM debian:bookworm
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)"
ENTRYPOINT ["/src/runner"]
CMD ["--help"]
