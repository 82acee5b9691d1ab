"""Installs spoof-detection: the science package, the TFX components and the pipeline.

The repository keeps `components/`, `pipeline/` and `schemas/` at its top level; they are
installed as subpackages of `spoofdetect` so that a container image (Kubeflow) imports every
executor from the installed package, never from a working directory.
"""

from setuptools import setup

PACKAGE_DIRS = {
    "spoofdetect": "spoofdetect",
    "spoofdetect.components": "components",
    "spoofdetect.components.feature_extractor": "components/feature_extractor",
    "spoofdetect.components.wgan_pretrainer": "components/wgan_pretrainer",
    "spoofdetect.components.spoof_evaluator": "components/spoof_evaluator",
    "spoofdetect.pipeline": "pipeline",
    "spoofdetect.schemas": "schemas",
}

# Exact versions live in constraints.txt (the lock file); these are the direct needs.
INSTALL_REQUIRES = [
    "tfx[kfp]==1.16.0",
    "tensorflow==2.16.2",
    "ml-metadata==1.16.0",
    "kfp==2.5.0",
    "protobuf==3.20.3",
    # Beam 2.61 is the newest that keeps protobuf 3.20 (needed by kfp 2.5) and ships dill;
    # naming it also spares pip a long backtracking search.
    "apache-beam[gcp]==2.61.0",
    "dill",
    "numpy",
    "soundfile",
    "soxr",
    # WORLD, the vocoder of the vocoded training copies (features.vocoded); an sdist, built
    # with the C++ compiler at install.
    "pyworld",
    "librosa",
    "scikit-learn",
    "matplotlib",
]

setup(
    name="spoof-detection",
    version="0.1.0",
    description="TFX pipeline that detects spoofed (deepfaked) speech",
    python_requires=">=3.10,<3.11",
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={"spoofdetect.schemas": ["*.pbtxt"], "spoofdetect.pipeline": ["*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": ["pytest", "pytest-timeout", "ruff"]},
    entry_points={"console_scripts": ["spoofdetect=spoofdetect.cli:main"]},
)
