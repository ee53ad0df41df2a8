"""Installation script for stratify (metadata lives here; pyproject.toml only holds tool config)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "stratify" / "_version.py").read_text()
).group(1)

setup(
    name="stratify",
    version=VERSION,
    description="Patient stratification from medical images: contrastive autoencoders, "
    "metadata-kernel losses and clustering with a scikit-learn API.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["stratify", "stratify.*"]),
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "scikit-learn>=1.6",
        "hdbscan>=0.8.33",
        "umap-learn>=0.5",
        "numpy>=1.24",
        "pandas>=2.0",
        "scipy>=1.10",
        "medmnist>=2.2",
        "seaborn>=0.12",
        "tqdm>=4.60",
    ],
    extras_require={
        "dev": [
            "pytest>=7.4",
            "ruff>=0.5",
            "pytorch-metric-learning>=2.3",
        ],
    },
    entry_points={"console_scripts": ["stratify=stratify.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
