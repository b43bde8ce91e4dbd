# The two commands of the quick start are `make demo` and `make test`.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Pinned tools and build output live outside the clone, so a second run (or a
# second clone) reuses them. Both are overridable.
export IMAGEPIPELINE_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/imagepipeline
export CARGO_TARGET_DIR ?= $(IMAGEPIPELINE_CACHE)/target

CARGO ?= cargo

.PHONY: help demo test bench tools prerequisites fmt-check clippy crds openapi

help:
	@echo "make demo   the example pipeline applied to emulated AWS, images sent through it, a report, then destroyed"
	@echo "make test   install the pinned test tools, then format check, clippy and every test"
	@echo "make bench  benchmarks against emulated AWS (release build; prints the tables)"
	@echo "make tools  only install the pinned test tools into $(IMAGEPIPELINE_CACHE)"
	@echo "make crds   regenerate crds/ from the Rust types"
	@echo "make openapi  regenerate services/upload-api/openapi.json from the handlers"

prerequisites:
	@scripts/prerequisites.sh

tools:
	@scripts/tools.sh install all

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: prerequisites tools fmt-check clippy
	$(CARGO) test --workspace

# One cargo run over the workspace's benches: a `cargo bench -p` per crate
# resolves another feature set and compiles every dependency again.
bench: prerequisites
	@scripts/tools.sh install moto
	@scripts/tools.sh install tansu
	$(CARGO) bench --workspace --benches

crds:
	$(CARGO) run --quiet -p imagepipeline-operator -- crd > crds/imagepipelines.imagepipeline.io.yaml

openapi:
	UPDATE_OPENAPI=1 $(CARGO) test --quiet -p upload-api --test openapi the_committed_document_is_the_generated_one

# The binaries are built as `make test` builds them: the tests' dev-dependencies
# add features to tokio and the AWS HTTP client, and a plain `cargo build` would
# compile every dependency a second time without them.
demo: prerequisites
	@scripts/tools.sh install moto
	@scripts/tools.sh install tansu
	@echo "==> building imagepipeline, upload-api, stream-bridge and the demo: the first build compiles the"
	@echo "    AWS SDKs and librdkafka, about 6 minutes on 2 cores; later builds take seconds"
	$(CARGO) test --workspace --no-run --quiet
	@"$(CARGO_TARGET_DIR)/debug/imagepipeline-demo"
