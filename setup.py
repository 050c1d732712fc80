"""Package discovery, plus one mapped package that pyproject.toml cannot express.

The top-level `fixtures/` folder ships inside the wheel as `simulator.samples`, so
the sample org, emails, scenarios and price books live in one real folder and still
travel with the package.
Everything else about the project is declared in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

SAMPLES = [
    "simulator.samples",
    "simulator.samples.emails",
    "simulator.samples.scenarios",
    "simulator.samples.prices",
]

setup(
    packages=[
        *find_namespace_packages(include=["simulator", "simulator.*"], exclude=["*.__pycache__"]),
        *SAMPLES,
    ],
    package_dir={"simulator.samples": "fixtures"},
)
