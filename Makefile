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

run: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target memgate
	@echo "memgate: public http://127.0.0.1:$${PORT:-8080}/healthz  /readyz  /startupz"
	@echo "memgate: admin  http://127.0.0.1:$${ADMIN_PORT:-9090}/metrics  /debug/memory"
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
