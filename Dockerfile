# syntax=docker/dockerfile:1
# Tamarack: one image for every service (`tamarack serve --only=<svc>`) and for the all-in-one server.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t tamarack .
#   docker run --rm -p 8080:8080 tamarack                      # all services, embedded SQLite + NATS
#
# The image runs as the unprivileged user `tamarack` (uid 10001). The testbed's `local` sandbox backend
# (runc + cgroups) needs root, namespaces and loop devices: run the all-in-one container with
# `--user 0 --privileged --init` for that, or use `TAMARACK_SANDBOX_BACKEND=simulator` for a demo. In
# Kubernetes the testbed runs sandboxes through the `kubernetes` backend (pods in `tamarack-sandboxes`),
# so the service pods stay non-root. See docs/deployment.md.

ARG VERSION=dev

# 1. Web UI. The UI is optional: without frontend/package.json the binary serves a page explaining how to
#    build it, exactly like `go run ./cmd/tamarack serve` on a machine without Node.
FROM node:20-bookworm-slim AS ui
WORKDIR /src/frontend
COPY frontend/ ./
RUN --mount=type=cache,target=/root/.npm \
    set -eu; \
    if [ -f package.json ]; then \
        if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi; \
        npm run build; \
    else \
        echo "frontend/package.json not found: building the image without the web UI"; \
    fi; \
    mkdir -p dist && touch dist/.keep

# 2. The binary: static (CGO_ENABLED=0; SQLite is the pure-Go driver), stripped, with its version.
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
COPY --from=ui /src/frontend/dist ./frontend/dist
ARG VERSION
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tamarack ./cmd/tamarack \
    && /out/tamarack version

# 3. Runtime: Debian slim with what the local sandbox backend calls (runc, tini-static, mkfs.ext4, mount).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends runc tini e2fsprogs mount ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tamarack \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin tamarack \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=build /out/tamarack /usr/local/bin/tamarack
ARG VERSION
LABEL org.opencontainers.image.title="tamarack" \
      org.opencontainers.image.description="Tamarack: testbed and marketplace of an AI compute programme" \
      org.opencontainers.image.source="https://github.com/tamarack-ai/tamarack" \
      org.opencontainers.image.version="${VERSION}"
ENV TAMARACK_DATA=/data \
    TAMARACK_ADDR=:8080
WORKDIR /data
USER 10001:10001
EXPOSE 8080
# Liveness of whatever TAMARACK_ADDR says (":8081" → port 8081), without curl: bash's /dev/tcp. Kubernetes
# ignores HEALTHCHECK; the manifests probe /healthz and /readyz themselves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${TAMARACK_ADDR##*:} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["tamarack"]
CMD ["serve"]
