# dockbed's everyday commands. Run as root: they install packages, start
# daemons and make network interfaces.
SHELL := /bin/bash
BIN := .venv/bin
PYTEST_ARGS ?= -ra

.PHONY: install up down node image test lint

## install: Debian packages and the venv (idempotent; see scripts/install.sh)
install:
	bash scripts/install.sh

## up: a local node, broker, agent and server
up: install
	$(BIN)/dockbed up

## down: stop what 'make up' started
down:
	$(BIN)/dockbed down

## node: engine, lab cable, shim, lab network and image on this machine
node: install
	$(BIN)/dockbed node setup

## image: the lab base image (skipped when it exists)
image: install
	$(BIN)/dockbed image build

# The tests need a set-up node, the image and the broker. pytest's own exit
# code is the target's: 5 (no tests collected) fails it like any other, so
# nothing may swallow it here.
## test: set up the node and broker, then run every test
test: lint
	$(BIN)/dockbed node setup
	$(BIN)/dockbed broker setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff (check and format) and mypy --strict on the package
lint: install
	$(BIN)/ruff check dockbed tests bench
	$(BIN)/ruff format --check dockbed tests bench
	$(BIN)/mypy
