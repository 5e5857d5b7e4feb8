# `make demo` and `make test` work on a fresh machine: they create .venv and install into it first.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
TOMOBILE := $(VENV)/bin/tomobile
STAMP := $(VENV)/.tomobile-installed
DEMO_OUT ?= demo_out

.PHONY: demo test test-all install clean

install: $(STAMP)

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU wheel, never a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

demo: $(STAMP)
	$(TOMOBILE) export vit-b16 --merge tome:r=16 --format onnx,coreml,executorch --out $(DEMO_OUT)/vit-b16
	@# If any artifact misses its bound, the export exits non-zero after writing the table and the files;
	@# the demo says so and still generates through ONNX Runtime, so the clip and figures are shown.
	$(TOMOBILE) export video-dit-tiny --format onnx,coreml,executorch --out $(DEMO_OUT)/video-dit-tiny \
		|| echo "video-dit-tiny: validation reported failures above; continuing with ONNX Runtime"
	$(TOMOBILE) generate "a red circle moving left" --runtime onnxruntime --artifacts $(DEMO_OUT)/video-dit-tiny \
		--lpl 15 --tdtm-steps 15 --compare --out $(DEMO_OUT)/red-circle-left.gif

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not macos" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(DEMO_OUT) tomobile-out .pytest_cache
