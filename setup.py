"""r1jax: the DeepSeek-R1 recipe in JAX (toy base model, R1-Zero GRPO, R1-protocol evaluation)."""

from setuptools import find_packages, setup

setup(
    name="r1jax",
    version="0.1.0",
    description="DeepSeek-R1 training recipe in JAX / Flax NNX: R1-Zero GRPO, SFT stages, reward models, one-config pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["r1jax", "r1jax.*"]),
    install_requires=[
        "jax>=0.10",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "sentencepiece>=0.2",
        "tensorflow-datasets>=4.9.9",
        "importlib_resources",
        "array_record>=0.8",
        "ml-collections>=1.1",
        "absl-py",
        "numpy",
        "tqdm",
        "matplotlib",
        "tensorboardX",
        "sympy",
        "math-verify>=0.9",  # math answer equivalence (rewards/sympy_worker.py runs it isolated)
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist",
            "hypothesis",
            "nbclient",
            "nbformat",
            "ipykernel",
            "psutil",
            "scipy",
            "ruff",
            "wandb",
        ],
        "hf": ["torch==2.13.0", "transformers", "safetensors", "tokenizers"],
        "notebooks": ["jupyter", "nbclient", "nbformat", "ipykernel"],
        "wandb": ["wandb"],
    },
)
