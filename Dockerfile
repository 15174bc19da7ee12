# syntax=docker/dockerfile:1
# telescope: a static binary on an empty image, running as a non-root user that holds only
# CAP_NET_RAW and CAP_NET_ADMIN (as file capabilities; grant them to the container too):
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t telescope .
#   docker run --network host --cap-drop ALL --cap-add NET_RAW --cap-add NET_ADMIN telescope
#
# Stage 1 builds with CGO_ENABLED=0 (AF_PACKET capture is pure Go); the final stage holds
# the binary, the default config (also embedded in it) and nothing else: telescope makes
# no outgoing TLS connections, so no CA certificates are needed.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/telescope ./cmd/telescope \
 && /out/telescope version \
 && apt-get update -qq && apt-get install -y -qq libcap2-bin >/dev/null \
 && setcap cap_net_raw,cap_net_admin+ep /out/telescope \
 && mkdir -p /out/etc/telescope && cp configs/telescope.yaml /out/etc/telescope/telescope.yaml

FROM scratch
COPY --from=build /out/telescope /telescope
COPY --from=build /out/etc/telescope/telescope.yaml /etc/telescope/telescope.yaml
USER 65532:65532
EXPOSE 9813
ENTRYPOINT ["/telescope"]
CMD ["run", "--config", "/etc/telescope/telescope.yaml"]
