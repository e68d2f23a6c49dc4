# syntax=docker/dockerfile:1
# NetSentinel container image: static binary, non-root user.
#
# Build:  docker build -t netsentinel .
# Run (host sensor; sees the host's sockets, processes and neighbour table):
#   docker run --rm --net=host --pid=host \
#     -v /proc:/host/proc:ro -e HOST_PROC=/host/proc \
#     -v /etc/resolv.conf:/host/etc/resolv.conf:ro \
#     netsentinel --host-proc /host/proc --resolv-conf /host/etc/resolv.conf -d 0 --window 5m
# Ship to Elasticsearch (credentials from the environment, never flags):
#   docker run ... -e NETSENTINEL_ES_API_KEY=... netsentinel -d 0 --sink elasticsearch:https://es:9200
# As a Kubernetes DaemonSet use hostNetwork: true, hostPID: true and the same
# read-only /proc mount. Unprivileged, every socket is still listed; PIDs of
# other users' processes need CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH (see README).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/netsentinel ./cmd/netsentinel

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/netsentinel /usr/local/bin/netsentinel
USER 65532:65532
WORKDIR /var/lib/netsentinel
ENTRYPOINT ["/usr/local/bin/netsentinel"]
CMD ["--duration", "0", "--window", "5m"]
