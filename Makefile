# `make serve` and `make test` each set up everything they need on a fresh machine, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Tests build the image offline (no registry traffic); `make serve` tries a registry first.
IMAGE_BUILD ?= auto

.PHONY: serve test test-state test-remote test-kubernetes unit venv docker image bench clean

$(BIN)/toolshed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: this version resolves to the local CPU wheel; left to the resolver it pulls CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/toolshed

# LibreChat's own code-execution tool (npm @librechat/agents), which tests/test_librechat.py runs with Node.js;
# installed under build/, so the third-party packages stay out of the source tree.
LIBRECHAT_CLIENT := build/librechat-client/node_modules/.package-lock.json
$(LIBRECHAT_CLIENT): tests/librechat/package.json tests/librechat/package-lock.json tests/librechat/run_tool.mjs
	mkdir -p build/librechat-client
	cp tests/librechat/package.json tests/librechat/package-lock.json tests/librechat/run_tool.mjs build/librechat-client/
	cd build/librechat-client && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# openai==1.2.3, the first Assistants API's SDK, which tests/test_assistants_v1.py runs the v1 seed flows with; in
# its own venv under build/, as its pins (httpx < 0.28) are not the project's. A stamp file marks it installed
# (bin/python is a symlink: touching it would touch the system's interpreter).
OPENAI_V1 := build/openai-v1/.installed
$(OPENAI_V1): tests/openai_v1/requirements.txt
	$(PYTHON) -m venv build/openai-v1
	build/openai-v1/bin/pip install --quiet -r tests/openai_v1/requirements.txt
	touch $@

# Debian's chromium, the browser tests/test_playground.py drives with Playwright (`playwright install` downloads
# its own build, which a machine that reaches only package registries cannot).
CHROMIUM := build/.chromium
$(CHROMIUM):
	mkdir -p build
	if [ ! -x /usr/bin/chromium ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi
	touch $@

# OpenSSH for tests/test_ssh_host.py, which runs an sshd of its own on a loopback port; a freshly installed system
# sshd service is stopped and disabled, so nothing is left listening on port 22.
OPENSSH := build/.openssh
$(OPENSSH):
	mkdir -p build
	if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null; then apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client && \
	  { systemctl disable --now ssh.service ssh.socket 2>/dev/null || service ssh stop 2>/dev/null || true; }; fi
	touch $@

docker:
	@bash scripts/ensure_docker.sh

image: venv docker
	$(BIN)/toolshed image build --mode $(IMAGE_BUILD)

serve: image
	$(BIN)/toolshed serve

# pytest-xdist workers for `make test-state`: most of its tests wait on kernels, servers and timeouts, so two workers
# on two cores more than halve its wall time; a module stays on one worker. 0: serial. `make test` stays serial:
# under two workers the second-dockerd, ssh, Kubernetes and gVisor suites failed on load (docs/testing.md).
WORKERS ?= 2
PARALLEL := -n $(WORKERS) --dist loadfile
# pytest's "no tests collected" (exit 5) is a failure here.
NO_EMPTY = status=$$?; if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$status

# The one test that needs a Kubernetes cluster (marker `cluster`) is left out: no cluster runs here, and CI allows
# no skip. Run it where KUBECONFIG answers: `.venv/bin/python -m pytest -m cluster`.
test: venv docker $(LIBRECHAT_CLIENT) $(OPENAI_V1) $(CHROMIUM) $(OPENSSH)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/toolshed image build --mode offline
	TOOLSHED_REQUIRE_DOCKER=1 $(BIN)/python -m pytest -m "not cluster" $(PYTEST_ARGS); $(NO_EMPTY)

# The whole suite again with every server's metadata in a real PostgreSQL and its file bytes in a real S3 server
# (tests/state_tier.py): every test that starts a server (`docker or server`; one that starts none would run just
# as in `make test`); the PostgreSQL and S3 tests themselves ran in `make test`. Sandboxes run under runc
# here unless a test names its runtime: this tier checks the state backends, and `make test` checked gVisor. The
# second-dockerd and Kubernetes tests check where sandboxes run, not where the server keeps its state, and run in
# `make test`, as does the Docker-engine restart (it restarts the engine every other test runs on); so do the
# suites that check the sandbox and its kernel alone (the security battery, gVisor, the kernel channel, the
# analysis stack), which store nothing.
test-state: venv docker $(LIBRECHAT_CLIENT) $(OPENAI_V1) $(CHROMIUM)
	$(BIN)/toolshed image build --mode offline
	TOOLSHED_TEST_STATE=postgres+s3 TOOLSHED_SANDBOX_RUNTIME=runc TOOLSHED_REQUIRE_DOCKER=1 $(BIN)/python -m pytest \
	  $(PARALLEL) \
	  -m "(docker or server) and not postgres and not s3 and not install and not cluster and not restarts_engine" \
	  --ignore=tests/test_remote_docker.py --ignore=tests/test_remote_files.py \
	  --ignore=tests/test_remote_file_agent.py --ignore=tests/test_sandbox_hosts.py --ignore=tests/test_ssh_host.py \
	  --ignore=tests/test_kubernetes.py --ignore=tests/test_kubernetes_host.py \
	  --ignore=tests/test_kubernetes_kubelet.py --ignore=tests/test_sandbox_security.py --ignore=tests/test_gvisor.py \
	  --ignore=tests/test_kernel_relay.py --ignore=tests/test_kernel_session.py --ignore=tests/test_sandbox_stack.py \
	  $(PYTEST_ARGS); $(NO_EMPTY)

# The sandbox and security suites again with every sandbox on a second, separate dockerd reached over mutual TLS,
# sharing no path with the server (issue 33; tests/remote_switch.py).
REMOTE_SUITES := tests/test_containers_api.py tests/test_container_files.py tests/test_artifacts.py \
	tests/test_sandbox_security.py
test-remote: venv docker
	$(BIN)/toolshed image build --mode offline
	TOOLSHED_TEST_REMOTE=1 TOOLSHED_REQUIRE_DOCKER=1 $(BIN)/python -m pytest $(REMOTE_SUITES) $(PYTEST_ARGS); \
	  $(NO_EMPTY)

# The same suites with every sandbox a kernel pod of a fake Kubernetes API server whose fake kubelet runs pods as
# local containers, reached through the pods' exec WebSocket alone (issue 33; tests/remote_switch.py).
# The Docker container's own settings (ports, network mode, runtime, ulimits) are the Docker backend's: the pod
# spec's equivalents are tests/test_kubernetes.py's, and what the fake kubelet makes of them proves nothing.
test-kubernetes: venv docker
	$(BIN)/toolshed image build --mode offline
	TOOLSHED_TEST_KUBERNETES=1 TOOLSHED_REQUIRE_DOCKER=1 $(BIN)/python -m pytest $(REMOTE_SUITES) \
	  --deselect "tests/test_sandbox_security.py::test_kernel_ports_are_not_published_on_the_host" $(PYTEST_ARGS); \
	  $(NO_EMPTY)

# The fast tier alone: no Docker, no embedding model (fakes passed through the engines' constructors), no
# clean-install venv.
unit: venv
	$(BIN)/python -m pytest -m "not docker and not model and not install and not postgres and not s3 and not cluster" \
	  $(PYTEST_ARGS)

bench: image
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/assistants.py

clean:
	rm -rf $(VENV)
