"""Install ssl_zoo (the framework), ssl_zoo_methods (the ``methods/`` folder), the configs and
the model-zoo catalog.

``methods/`` is installed under the name ``ssl_zoo_methods`` so that it does not claim the
generic top-level import name ``methods``; ``ssl_zoo`` finds it through the ``ssl_zoo.methods``
entry-point group (third-party packages register their methods the same way).

Data that ships in the wheel, one source of truth each (``ssl_zoo.utils.resources``):
``configs/`` -> ``ssl_zoo/configs/`` and ``model_zoo/`` (catalog.yaml, MODEL_ZOO.md) ->
``ssl_zoo/zoo_catalog/``, mapped with ``package_dir`` so the files stay where they are in git.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "ssl_zoo", "__init__.py")) as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

setup(
    name="ssl_zoo",
    version=VERSION,
    description="Self-supervised learning framework for images: BYOL, SimCLR, MoCo and more",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["ssl_zoo", "ssl_zoo.*"]) + ["ssl_zoo_methods", "ssl_zoo.configs",
                                                                "ssl_zoo.zoo_catalog"],
    package_dir={"ssl_zoo_methods": "methods", "ssl_zoo.configs": "configs", "ssl_zoo.zoo_catalog": "model_zoo"},
    package_data={"ssl_zoo": ["data/builtin/*.zip"], "ssl_zoo.configs": ["*.yaml", "**/*.yaml"],
                  "ssl_zoo.zoo_catalog": ["catalog.yaml", "MODEL_ZOO.md"]},
    include_package_data=True,
    entry_points={
        "console_scripts": [
            "ssl-zoo-train = ssl_zoo.cli.train:main",
            "ssl-zoo-benchmark = ssl_zoo.cli.benchmark:main",
            "ssl-zoo-model-zoo = ssl_zoo.cli.model_zoo:main",
            "ssl-zoo-embed = ssl_zoo.cli.embed:main",
        ],
        # The built-in methods; a third-party package adds `mymethods = my_pkg.methods` here.
        "ssl_zoo.methods": ["builtin = ssl_zoo_methods"],
    },
    install_requires=[
        "torch>=2.1,<3",
        "torchvision>=0.16",
        "timm>=0.9",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "lightly>=1.5",
        "tabulate>=0.9",
        "tqdm>=4.60",
        "tensorboard>=2.10",
        "matplotlib>=3.5",
        "pyyaml>=5.4",
        "numpy>=1.22",
        "pillow>=9.0",
        "safetensors>=0.4",
        "scipy>=1.8",  # .mat files: Stanford Cars, Flowers-102, SBD cls/*.mat, NYU splits.mat (MATLAB v5)
        "h5py>=3.0",  # NYU nyu_depth_v2_labeled.mat (MATLAB v7.3 = HDF5)
    ],
    # scikit-image: tools/make_middlebury_nyu.py (its bundled Middlebury stereo pair);
    # scikit-learn: the transfer solver is tested against its LogisticRegression
    extras_require={"test": ["pytest>=7", "scikit-image>=0.19", "scikit-learn>=1.1"],
                    "onnx": ["onnx"]},
)
