"""Builds the optional compiled hot paths (Cython). Everything else is in pyproject.toml.

Each extension is ``optional``: without a C compiler pip still installs fastmm and the pure-Python twin
of each function runs instead (``fastmm.speedups.report()`` says which is in use).
"""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - Cython is a build requirement; this only guards odd builds
    ext_modules = []
else:
    ext_modules = cythonize(
        [Extension("fastmm.data._l2fast", ["fastmm/data/_l2fast.pyx"], optional=True),
         Extension("fastmm.core._plan_fast", ["fastmm/core/_plan_fast.pyx"], optional=True),
         Extension("fastmm.core._agg_fast", ["fastmm/core/_agg_fast.pyx"], optional=True),
         Extension("fastmm.fix._parse_fast", ["fastmm/fix/_parse_fast.pyx"], optional=True),
         Extension("fastmm.venues.truex._decode_fast", ["fastmm/venues/truex/_decode_fast.pyx"],
                   optional=True),
         Extension("fastmm.fix._encode_fast", ["fastmm/fix/_encode_fast.pyx"], optional=True),
         Extension("fastmm.venues.truex._encode_fast", ["fastmm/venues/truex/_encode_fast.pyx"],
                   optional=True)],
        compiler_directives={"language_level": "3"}, quiet=True)

setup(ext_modules=ext_modules)
