# The two commands: `make run` and `make test`. Each installs what it needs first.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# ccache hits across clones in other folders (CI builds a fresh clone).
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true
ifeq ($(CI),true)
CMAKE_FLAGS += -DMEMGATE_WERROR=ON
endif

.PHONY: all deps build run test test-unit test-glibc fuzz bench clean

all: build

deps:
	@scripts/deps build

$(BUILD_DIR)/build.ninja:
	cmake --preset $(PRESET) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# `make run` serves the main job on an embedded default: the knowledge base on,
# indexing this project's own docs/ and README.md (a copy, mtimes kept, so an
# unchanged copy is the same corpus and its index is reused), unless
# KB_CORPUS_DIR says otherwise, so the coach answers with
# citations and POST /mcp works on the first run. The binary's own defaults stay
# the guide's (ENABLE_KB_SERVICE is opt-in): only this target turns the kb on.
RUN_CORPUS := $(BUILD_DIR)/first-run-corpus
RUN_PORT = $${PORT:-8080}
run: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target memgate
	@rm -rf $(RUN_CORPUS) && mkdir -p $(RUN_CORPUS) && cp -pR docs/. $(RUN_CORPUS)/ && cp -p README.md $(RUN_CORPUS)/
	@echo "memgate: public http://127.0.0.1:$(RUN_PORT)/healthz  /readyz  /startupz"
	@echo "memgate: admin  http://127.0.0.1:$${ADMIN_PORT:-9090}/ (the admin page)  /metrics  /debug/memory"
	@echo "memgate: the kb indexes $${KB_CORPUS_DIR:-$(RUN_CORPUS) (docs/ and README.md)}; once /readyz says ready, try:"
	@echo "  curl -s http://127.0.0.1:$(RUN_PORT)/api/ai/coach -H 'Content-Type: application/json' -d '{\"question\":\"How does the staged loader decide whether a module fits?\"}'"
	@echo "  curl -s 'http://127.0.0.1:$(RUN_PORT)/api/kb/search?q=memory+gate'"
	@echo "  curl -s http://127.0.0.1:$(RUN_PORT)/startupz"
	ENABLE_KB_SERVICE=$${ENABLE_KB_SERVICE:-true} \
	  KB_CORPUS_DIR=$${KB_CORPUS_DIR:-$(RUN_CORPUS)} \
	  exec $(BUILD_DIR)/app/memgate

test:
	@scripts/deps build test
	cmake --preset $(PRESET) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD_DIR) -j $(JOBS)
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 300

test-unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L unit

# The memory probe and accounting on glibc malloc instead of jemalloc.
test-glibc:
	@scripts/deps build test
	cmake --preset glibc $(CMAKE_FLAGS) >/dev/null
	cmake --build build/glibc -j $(JOBS) --target memgate_memory_test memgate_base_test memgate_startup_test memgate_guard_test
	ctest --test-dir build/glibc --output-on-failure -j $(JOBS) -L unit -R 'Memory|Allocator|Cgroup|Process|Probe|RouteAccounting|Loader|Guard|Trigger'

fuzz:
	@scripts/deps build fuzz
	scripts/fuzz $${FUZZ_SECONDS:-60}

bench:
	@scripts/deps build bench
	bench/run

clean:
	rm -rf build
