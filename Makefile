# The two commands of the README:
#   pip install -e '.[all]' && llmlens demo     # run the main job
#   make test                                    # install everything the tests need, run them all
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# Debian packages the tests drive for real: a browser for the UI tests, Prometheus (and promtool)
# for the metrics tests, Alertmanager (and amtool) for the alerts tests, docker-compose and HAProxy
# to check the deploy files (kubectl, with Kustomize 5, comes with the machine image: Debian's is 1.20).
DEBIAN_PACKAGES ?= chromium prometheus prometheus-alertmanager docker-compose haproxy

.PHONY: test install system-deps lint bench deploy-files

test: install system-deps
	$(PYTHON) -m pytest -q

install:
	$(PIP) install -q -e '.[all]'

# Installs Debian packages when missing (needs root or sudo, as on CI machines).
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint:
	$(PYTHON) -m ruff check src tests benchmarks

bench:
	$(PYTHON) benchmarks/ingest.py
	$(PYTHON) benchmarks/query.py

# Rewrites the deploy files that llmlens generates (rules, dashboards, provisioning): see deploy/README.md.
deploy-files:
	$(PYTHON) deploy/generate.py
