# syntax=docker/dockerfile:1
# NetSentinel container image: static binary on distroless, user 65532.
#
# Build:  docker build -t netsentinel .
# Two ways to run it (README "Install" has the full commands):
#  (a) unprivileged (the image's user): every socket of the network namespace,
#      PIDs only for its own processes:
#        docker run -d --name netsentinel --net=host --pid=host \
#          -v /proc:/host/proc:ro -v /etc:/host/etc:ro -e HOST_PROC=/host/proc -e HOST_ROOT=/host \
#          -v netsentinel-state:/var/lib/netsentinel netsentinel
#  (b) full attribution: uid 0 with every capability dropped but the two that
#      read other users' /proc/<pid>/fd (Docker and Kubernetes give no
#      effective capabilities to a non-root user):
#        docker run ... --user 0:0 --cap-drop ALL --cap-add SYS_PTRACE --cap-add DAC_READ_SEARCH \
#          --security-opt no-new-privileges netsentinel
# Reports, alerts.ndjson and its disk buffer (netsentinel-spool/) live in
# /var/lib/netsentinel (the working directory): mount a volume there to keep
# them across restarts.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/netsentinel ./cmd/netsentinel
# The state directory, created here with its owner and mode and copied with
# --chown: WORKDIR alone creates it root-owned on the classic builder, buildah
# and podman (moby/moby#36677, buildah#2323). Group 0 may write too: mode (b)
# runs as uid 0 without CAP_DAC_OVERRIDE, which cannot write into a directory
# only 65532 owns.
RUN install -d -m 0770 -o 65532 -g 0 /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/netsentinel /usr/local/bin/netsentinel
COPY --from=build --chown=65532:0 /out/state /var/lib/netsentinel
USER 65532:65532
WORKDIR /var/lib/netsentinel
ENV HOST_PROC=/proc
ENTRYPOINT ["/usr/local/bin/netsentinel"]
# /healthz, /readyz and /metrics on the loopback for HEALTHCHECK (with
# --net=host that is the host's loopback: choose another port if 9870 is taken).
CMD ["--duration", "0", "--window", "5m", "--sink", "stdout", "--sink", "file:alerts.ndjson?buffer=disk", \
     "--http-address", "127.0.0.1:9870"]
# No shell or curl in distroless: the binary checks itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/netsentinel", "health"]
