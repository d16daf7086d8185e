# oncehook images.
#
#   docker build -t oncehook/oncehook .                 # oncehook (the last stage, the default)
#   docker build -t oncehook/bench --target bench .     # the bench tool (cmd/bench)
#
# Both binaries are static (CGO_ENABLED=0) and run as the distroless "nonroot"
# user (65532) in an image with no shell, package manager or curl. That is why
# there is no HEALTHCHECK here: health is checked from outside, by the load
# balancer (HAProxy's active `GET /readyz` in deploy/haproxy/haproxy.cfg) or
# by the orchestrator (a Kubernetes readinessProbe on /readyz, livenessProbe on
# /healthz). oncehook has no health-check subcommand to run instead.
#
# deploy/compose_test.go checks this file: CGO_ENABLED=0, a non-root final
# stage, and that it builds ./cmd/oncehook and runs /oncehook.

# The Go toolchain must be at least go.mod's `go` line; GOTOOLCHAIN=local makes
# an older one fail loudly instead of downloading a newer one during the build.
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
WORKDIR /src
# Modules first, in their own layer: it is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .

# One stage per binary, so that BuildKit builds only what the chosen target
# needs. TARGETOS/TARGETARCH cross-compile for `docker buildx build --platform`.
# VERSION and COMMIT (the context has no .git): docker build --build-arg
# VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse --short=12 HEAD) .
FROM build AS build-oncehook
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=devel
ARG COMMIT=unknown
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w -X github.com/oncehook/oncehook/internal/buildinfo.version=${VERSION} -X github.com/oncehook/oncehook/internal/buildinfo.commit=${COMMIT}" -o /out/oncehook ./cmd/oncehook

FROM build AS build-bench
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/bench ./cmd/bench

# The bench tool: `bench run` (load and correctness against receivers or a
# load balancer) and `bench sink` (the counting HTTP sink receivers deliver
# to). See the `bench` profile in docker-compose.yml.
FROM gcr.io/distroless/static-debian12:nonroot AS bench
COPY --from=build-bench /out/bench /bench
USER 65532:65532
EXPOSE 8099
ENTRYPOINT ["/bench"]
CMD ["help"]

# oncehook. Keep this stage last: it is what a plain `docker build .` makes.
FROM gcr.io/distroless/static-debian12:nonroot AS oncehook
COPY --from=build-oncehook /out/oncehook /oncehook
# 65532 is distroless's "nonroot"; numeric, so that runAsNonRoot can verify it.
USER 65532:65532
# 8080: LISTEN_ADDR (webhooks, /healthz, /readyz).
# 9090: ADMIN_ADDR (/metrics, /debug/pprof/). The receiver's default
# ADMIN_ADDR is 127.0.0.1:9090, unreachable from outside the container: set
# ADMIN_ADDR=:9090 to scrape it, and publish it only on a private network.
EXPOSE 8080 9090
# The receiver drains on SIGTERM within SHUTDOWN_TIMEOUT (default 30s): give
# it a stop grace period longer than that (docker stop -t, compose
# stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/oncehook"]
CMD ["serve"]
