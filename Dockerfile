# The Toolshed server itself, for hosts with a registry (it pulls python:3.11-slim and the CPU build of torch).
# Build it from the checkout's root:
#   docker build -t toolshed .
# It drives the host's Docker engine through its socket, so sandbox bind mounts use host paths: mount the data
# and run dirs at the same paths inside and outside, with shared propagation for the per-sandbox disk mounts, and
# run privileged so it can loop-mount those disks:
#   docker run --privileged -p 127.0.0.1:8000:8000 \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/toolshed:/var/lib/toolshed:rshared -v /run/toolshed:/run/toolshed \
#     -e TOOLSHED_HOST=0.0.0.0 -e TOOLSHED_API_KEYS='["change-me"]' toolshed
# On its first start it builds the sandbox image on the host's engine; then `curl 127.0.0.1:8000/health` answers.
FROM python:3.11-slim
# openssh-client: ssh:// sandbox hosts are reached through an OpenSSH forward of their engine's socket.
RUN apt-get update && apt-get install -y --no-install-recommends docker.io debootstrap e2fsprogs mount \
    openssh-client && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/toolshed
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY retrieval ./retrieval
COPY sandbox_image ./sandbox_image
# The CPU build of torch first: the default index would bring gigabytes of CUDA libraries.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# Editable, so the sandbox recipe in ./sandbox_image stays beside the code that hashes and builds it; no
# extras: [project].dependencies holds everything the server imports (tests/test_install.py checks it).
RUN pip install --no-cache-dir -e .
ENV TOOLSHED_DATA_DIR=/var/lib/toolshed TOOLSHED_RUN_DIR=/run/toolshed
EXPOSE 8000
CMD ["toolshed", "serve"]
