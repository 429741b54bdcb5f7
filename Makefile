# The set-up commands of the README: `make demo` (main job), `make app` (the local web page on
# the demo run) and `make test` (test suite).
PYTHON ?= python3
WORKDIR ?= runs/demo
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: install demo demo-long app test

# `pip install -e ".[test,app]"`, except that an installed tensorflow-cpu (or another build of
# the tensorflow module) is kept instead of adding `tensorflow` beside it (tools/install.py);
# then the Kinetics-400 I3D weights for FVD and the offline perceptual loss, checked by SHA-256.
install:
	$(PYTHON) tools/install.py -q --extras=test,app
	$(PYTHON) -m kpvp.weights fetch

# Stage 1, pseudo-labels, stage 2, sample videos per class and the metrics report, on the
# built-in synthetic data (tiny config).
demo: install
	$(PYTHON) -m kpvp.train --stage=all --dataset=synthetic --tiny --workdir=$(WORKDIR)

# The same job with the settings that gave the cleanest samples and the lowest FVD on 64 test
# videos (experiments/README.md, "How long M trains"): three times the stage-1 steps with the
# equivariance loss, and 10000 stage-2 steps. 16 minutes on 2 idle cores.
LONG_WORKDIR ?= runs/demo_long
demo-long: install
	$(PYTHON) -m kpvp.train --stage=all --dataset=synthetic --tiny --workdir=$(LONG_WORKDIR) \
		--config.stage1.num_steps=3000 --config.stage1.equivariance_weight=100 \
		--config.stage1.coverage_weight=100 --config.stage2.num_steps=10000

# The local web page on the demo run: open the URL it prints (http://127.0.0.1:7860/).
app:
	$(PYTHON) -m kpvp.app --workdir=$(WORKDIR)

test: install
	$(PYTHON) -m pytest -n 2 tests
