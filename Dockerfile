# The Atelier fleet (atelier serve) with the docker runtime: it drives the
# host's Docker Engine through the mounted socket, one container per desktop
# (see compose.yaml). The binary is built on the host and copied in, as no Go
# toolchain image can be pulled where there is no registry:
#   make build && docker build -t atelier/fleet:dev .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# Root certificates for the model providers' HTTPS APIs; noVNC's modules,
# which the live view serves (/usr/share/novnc).
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ca-certificates novnc \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY bin/atelier /usr/local/bin/atelier
# Root in the container: the fleet hands each desktop's run dir to the
# desktop user (uid 1000) and talks to the Docker socket.
ENV ATELIER_RUNTIME=docker ATELIER_DATA_DIR=/var/lib/atelier
EXPOSE 8090
ENTRYPOINT ["/usr/local/bin/atelier"]
CMD ["serve"]
