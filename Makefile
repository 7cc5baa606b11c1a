# shoal developer commands. `make` alone lists them.
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install test lint fmt bench demo

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: ## set up the machine: venv with .[dev], Debian packages, MariaDB/PostgreSQL running
	bash scripts/bootstrap.sh

test: ## bootstrap, ruff, mypy, then every test (pytest args: make test ARGS='-k kafka')
	bash scripts/test.sh $(ARGS)

lint: ## ruff check, ruff format --check, mypy, import contracts
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: ## ruff format and safe ruff fixes
	$(BIN)/ruff format
	$(BIN)/ruff check --fix

bench: ## run the benchmarks (bench/run_all.sh)
	bash bench/run_all.sh

demo: ## run the end-to-end demo (scripts/demo.sh)
	bash scripts/demo.sh
