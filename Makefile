# The two commands a new user types: `make demo` and `make test` (plus `make ui`).
# Each creates .venv on first use: torch's CPU wheel first (a bare torch requirement
# would pull a multi-GB CUDA build), then this project with its dev extras.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.semid-installed
TORCH_VERSION ?= 2.13.0

.PHONY: demo test ui bench clean-home browser postgresql

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip check
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/semid demo $(ARGS)

test: $(STAMP) browser postgresql
	$(PY) -m pytest $(PYTEST_ARGS)

# The browser test drives Debian's Chromium through its ChromeDriver (never a downloaded
# browser); installed here, as root (CI runs as root), when either is missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "make test needs Chromium: run 'sudo apt-get install -y chromium chromium-driver' once" >&2; exit 1; \
	  fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; \
	fi

# tests/test_postgres_storage.py runs a real PostgreSQL server from Debian's package (in a
# temporary data directory, on a free port); installed here when missing.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "PostgreSQL is missing; install it: sudo apt-get update && sudo apt-get install -y postgresql" >&2; exit 1; \
	fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null

ui: $(STAMP)
	$(VENV)/bin/semid ui

bench: $(STAMP)
	$(PY) bench/bench_rq_kmeans.py
	$(PY) bench/bench_swing.py
	$(PY) bench/bench_aligner.py
	$(PY) bench/bench_tokenizers.py --target-balanced --target-vae
	$(PY) bench/bench_stability.py
	$(PY) bench/bench_ranking.py

clean-home:
	rm -rf .semid
