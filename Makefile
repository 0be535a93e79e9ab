# Two commands for a newcomer: `make demo` and `make test`. Everything else is set-up they share.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean system-deps build

demo: build
	@NEED="mosquitto" $(MAKE) --no-print-directory system-deps
	$(PY) -m classink.cli demo

test: build
	@NEED="mosquitto postgresql chromium" $(MAKE) --no-print-directory system-deps
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77,<90" "cython>=3.0,<4" "numpy>=1.26,<3"

$(STAMP): $(VENV)/bin/python pyproject.toml setup.py
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Editable installs compile ext/*.pyx once; rebuild in place whenever a kernel changes.
build: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace

# Mosquitto is the broker in the demo and in the tests; PostgreSQL is the production store the tests
# also run against; Chromium renders the web pages in the browser tests. Install them when missing
# and we are root; otherwise say exactly what to run.
NEED ?= mosquitto postgresql chromium
system-deps:
	@missing=""; \
	case "$(NEED)" in *mosquitto*) command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] \
	  || missing="$$missing mosquitto";; esac; \
	case "$(NEED)" in *postgresql*) command -v initdb >/dev/null 2>&1 \
	  || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql";; esac; \
	case "$(NEED)" in *chromium*) command -v chromium >/dev/null 2>&1 \
	  || missing="$$missing chromium";; esac; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "classink needs:$$missing. Install with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf build ext/*.c ext/*.so *.egg-info
