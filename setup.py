"""kpvp: Unsupervised Keypoint Learning for Guiding Class-Conditional Video Prediction."""
from setuptools import find_packages, setup

# `python -m kpvp.<module>` and these commands run the same `run()`.
APPS = {"kpvp-train": "train", "kpvp-evaluate": "evaluate", "kpvp-predict": "predict",
        "kpvp-export": "export", "kpvp-inspect": "inspect_data", "kpvp-weights": "weights",
        "kpvp-app": "app"}

setup(
    name="kpvp",
    version="0.1.0",
    description=(
        "TensorFlow 2 / Keras 3 implementation of 'Unsupervised Keypoint Learning for "
        "Guiding Class-Conditional Video Prediction' (Kim et al., NeurIPS 2019)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    classifiers=[
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["kpvp", "kpvp.*"]),
    package_data={"kpvp": ["data/splits/*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        # `tensorflow`, not `tensorflow-cpu`: the latter has no macOS arm64 / Linux aarch64
        # wheels and gives GPU users a CPU-only build. `make install` explains how a machine
        # that already has tensorflow-cpu keeps it.
        "tensorflow>=2.16",
        # safe_mode bypasses in .keras loading were fixed up to 3.14.
        "keras>=3.14",
        "tensorboard>=2.16",
        "ml-collections>=0.1.1",
        "absl-py>=1.0",
        "numpy>=1.23",
        "scipy>=1.9",
        "pillow>=9.0",
        "imageio-ffmpeg>=0.4.8",
        "tqdm>=4.60",
    ],
    extras_require={
        # NVIDIA GPUs on Linux: TensorFlow's CUDA and cuDNN libraries from PyPI.
        "and-cuda": ["tensorflow[and-cuda]>=2.16"],
        # The local web page (`python -m kpvp.app`).
        "app": ["flask>=2.2"],
        # Selenium drives Chromium in tests/test_app.py (the browser itself: apt, see README).
        "test": ["pytest>=7", "pytest-xdist>=3", "selenium>=4.10"],
    },
    # The Kinetics-400 I3D weights (FVD, offline perceptual loss) are not a dependency:
    # `kpvp-weights fetch` installs them, see the README.
    entry_points={"console_scripts": [f"{command} = kpvp.{module}:run"
                                      for command, module in APPS.items()]},
)
