# `make demo` and `make test` work on a fresh machine: they create .venv and install into it first.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TOMOBILE := $(VENV)/bin/tomobile
STAMP := $(VENV)/.tomobile-installed
# A second, small environment on the transformers line optimum supports (4.57, optimum-onnx),
# for the tests marked hf457 (and both_lines). pip reuses its wheel cache from the first one.
HF457_VENV ?= .venv-hf457
HF457_PY := $(HF457_VENV)/bin/python
HF457_STAMP := $(HF457_VENV)/.tomobile-installed
DEMO_OUT ?= demo_out
# Under make, a test whose tool (node, a JDK, Chromium) is missing fails; plain pytest skips it.
PYTEST := TOMOBILE_REQUIRE_ALL=1 $(PY) -m pytest

.PHONY: demo test test-all test-web web-setup web-system install clean test-android android-setup android-system test-ios \
	test-hf457 install-hf457 system native native-system

install: $(STAMP)

# Debian packages the app tests need, in one `apt-get update` + install, only for what is missing:
# node/npm (playwright-core wants node >= 20), chromium (web_demo), a JDK and junit5 (android_demo).
system:
	@missing=""; command -v node >/dev/null && command -v npm >/dev/null || missing="nodejs npm"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v javac >/dev/null || missing="$$missing openjdk-17-jdk-headless"; \
	test -f /usr/share/java/junit-platform-console-standalone.jar || missing="$$missing junit5"; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y --no-install-recommends $$missing; fi

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU wheel, never a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,plot,sentence,sd,video]'
	touch $(STAMP)

install-hf457: $(HF457_STAMP)

$(HF457_STAMP): pyproject.toml
	test -x $(HF457_PY) || $(PYTHON) -m venv $(HF457_VENV)
	$(HF457_PY) -m pip install --quiet --upgrade pip
	$(HF457_PY) -m pip install --quiet -e '.[dev,plot,optimum,optimum-sd]'
	touch $(HF457_STAMP)

demo: $(STAMP)
	$(TOMOBILE) export vit-b16 --merge tome:r=16 --format onnx,coreml,executorch --out $(DEMO_OUT)/vit-b16
	@# If any artifact misses its bound, the export exits non-zero after writing the table and the files;
	@# the demo says so and still generates through ONNX Runtime, so the clip and figures are shown.
	$(TOMOBILE) export video-dit-tiny --format onnx,coreml,executorch --out $(DEMO_OUT)/video-dit-tiny \
		|| echo "video-dit-tiny: validation reported failures above; continuing with ONNX Runtime"
	$(TOMOBILE) generate "a red circle moving left" --runtime onnxruntime --artifacts $(DEMO_OUT)/video-dit-tiny \
		--lpl 15 --tdtm-steps 15 --compare --out $(DEMO_OUT)/red-circle-left.gif

# Both suites run and print their summary lines; the target fails if either failed.
test: $(STAMP) web-setup android-setup $(HF457_STAMP) native
	$(PYTEST) -m "not slow and not macos and not hf457" -q; main=$$?; \
	$(MAKE) --no-print-directory test-hf457; hf=$$?; test $$main -eq 0 && test $$hf -eq 0

test-hf457: $(HF457_STAMP)
	$(HF457_PY) -m pytest -m "hf457 or both_lines" -q

# web_demo/: node unit tests over the contract and the page in headless Chromium (tests/web/).
# `make test` runs them with the rest of the suite (one pytest summary line); this runs them alone.
test-web: $(STAMP) web-setup
	$(PYTEST) tests/web -q -m "not slow"

WEB := web_demo
WEB_STAMP := $(WEB)/node_modules/.tomobile-installed

# The pinned
# npm packages (package-lock.json) and the files the page loads copied to web_demo/vendor/.
web-setup: web-system $(WEB_STAMP)

web-system: system

$(WEB_STAMP): $(WEB)/package-lock.json $(WEB)/tools/vendor.js | web-system
	cd $(WEB) && npm ci --no-audit --no-fund && npm run vendor
	touch $(WEB_STAMP)

test-all: $(STAMP) web-setup android-setup $(HF457_STAMP) native
	$(PYTEST) -m "not hf457" -q; main=$$?; \
	$(MAKE) --no-print-directory test-hf457; hf=$$?; test $$main -eq 0 && test $$hf -eq 0

# android_demo/: :core's JUnit 5 tests over the contract and the ExecuTorch glue compiled against
# compile-only stubs (tests/android/, android_demo/tools/test_core.sh). `make test` runs them with the
# rest of the suite (one pytest summary line); this runs them alone.
test-android: $(STAMP) android-setup
	$(PYTEST) tests/android -q

ANDROID := android_demo
ANDROID_STAMP := $(ANDROID)/node_modules/.tomobile-installed

# The system packages (see `system`), then kotlinc from npm.
android-setup: android-system $(ANDROID_STAMP)

android-system: system

$(ANDROID_STAMP): $(ANDROID)/package-lock.json | android-system
	cd $(ANDROID) && npm ci --no-audit --no-fund
	touch $(ANDROID_STAMP)

# ios_demo/: every .swift file parsed with tree-sitter-swift (syntax only; no Swift toolchain here).
test-ios: $(STAMP)
	$(PYTEST) tests/ios -q

# runtime/native/: the C++ engine `tomobile-native` on ExecuTorch's C++ runtime from the executorch wheel
# (headers, libraries and cmake config in site-packages/executorch), built into runtime/native/build.
NATIVE := runtime/native
native: $(STAMP) native-system
	cmake -S $(NATIVE) -B $(NATIVE)/build -DEXECUTORCH_ROOT="$$($(PY) -c 'import importlib.util as u; print(u.find_spec("executorch").submodule_search_locations[0])')" >/dev/null
	cmake --build $(NATIVE)/build -j2

# Its Debian packages, in one `apt-get update` + install, only for what is missing.
native-system:
	@missing=""; command -v cmake >/dev/null || missing="cmake"; command -v g++ >/dev/null || missing="$$missing g++"; \
	test -f /usr/include/nlohmann/json.hpp || missing="$$missing nlohmann-json3-dev"; \
	test -f /usr/include/openssl/evp.h || missing="$$missing libssl-dev"; \
	command -v valgrind >/dev/null || missing="$$missing valgrind"; \
	if [ -n "$$missing" ]; then apt-get update && apt-get install -y --no-install-recommends $$missing; fi

clean:
	rm -rf $(DEMO_OUT) tomobile-out .pytest_cache $(ANDROID)/build
