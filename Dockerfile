# Dockerfile — the runner in two stages: a build stage with the compilers,
# and a runtime stage with only the shared libraries it loads, gnuplot (the
# plots), tini (PID 1: forwards SIGTERM, reaps), make and curl (`make model`).
# Runs as the unprivileged user `runner` (uid 1000); any --user works, as
# the writable folders are world-writable.
#
#   docker build -t runner .
#   docker run --rm -v "$PWD/../shared:/shared:ro" -v "$PWD/results:/app/results" \
#       runner pipelines/task1.cfg --set model=../shared/models/minilm-l6-random
#
# Volumes: /shared is ../shared (datasets, models; pipelines say ../shared/...
# and the working directory is /app); /app/results receives the runs (or
# --out /somewhere/mounted); /app/models holds what `make model` installs
# (docker run --entrypoint make ... model). docs/docker.md has the details.
#
# The base is pinned to a dated Debian tag; offline, build with
# --build-arg BASE=<a local bookworm image> (docs/docker.md: debootstrap).
ARG BASE=debian:bookworm-20250929

FROM ${BASE} AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" && make install PREFIX=/opt/runner

FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libconfig9 libjansson4 libutf8proc2 libgsl27 libgslcblas0 zlib1g libdnnl2 libgomp1 libopenmpi3 \
        openmpi-bin gnuplot-nox tini make curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home runner
COPY --from=build /opt/runner/bin /opt/runner/bin
COPY --from=build /opt/runner/lib /opt/runner/lib
WORKDIR /app
COPY scripts/get-model.sh scripts/
COPY pipelines pipelines
COPY datasets datasets
RUN printf 'model:\n\tscripts/get-model.sh\n' > Makefile && mkdir -p results models && chmod 1777 results models
ENV PATH=/opt/runner/bin:$PATH HF_HOME=/app/models/.hf \
    OMPI_MCA_btl_vader_single_copy_mechanism=none
VOLUME ["/app/results"]
USER runner
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/runner/bin/runner"]
CMD ["--help"]
