"""Install ssl_zoo (the framework) and ssl_zoo_methods (the ``methods/`` folder).

``methods/`` is installed under the name ``ssl_zoo_methods`` so that it does not claim
the generic top-level import name ``methods``.
"""
from setuptools import find_packages, setup

setup(
    name="ssl_zoo",
    version="0.1.0",
    description="Self-supervised learning framework for images: BYOL, SimCLR, MoCo and more",
    python_requires=">=3.9",
    packages=find_packages(include=["ssl_zoo", "ssl_zoo.*"]) + ["ssl_zoo_methods"],
    package_dir={"ssl_zoo_methods": "methods"},
    package_data={"ssl_zoo": ["data/builtin/*.zip"]},
    include_package_data=True,
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
    extras_require={"test": ["pytest>=7", "scikit-image>=0.19", "scikit-learn>=1.1"]},
)
