"""Run inside Pyodide by precompile.mjs: bytecode for site-packages and the stdlib zip."""

import compileall
import glob
import importlib.util
import os
import py_compile
import shutil
import sys
import zipfile
from importlib._bootstrap_external import _code_to_hash_pyc

STDLIB_ZIP = f"/lib/python{sys.version_info.major}{sys.version_info.minor}.zip"
# Parts of wheels no interpreter here uses: plotly's Jupyter widget bundle
# (15 MB of JavaScript), and test suites.
UNUSED = [
    "plotly/labextension",
    "plotly/package_data/widgetbundle.js",
    "plotly-*.data",
    "*/tests",
    "*/*/tests",
    "**/*.pyi",
]


def compile_site(site):
    for pattern in UNUSED:
        for path in glob.glob(os.path.join(site, pattern), recursive=True):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    compileall.compile_dir(site, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def compile_stdlib(stdlib_out):
    with zipfile.ZipFile(STDLIB_ZIP) as source, zipfile.ZipFile(stdlib_out, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            data = source.read(info)
            out.writestr(info, data)
            if info.filename.endswith(".py"):
                # The file name zipimport itself would give the code when compiling the source.
                code = compile(data, f"{STDLIB_ZIP}/{info.filename}", "exec", dont_inherit=True)
                pyc = _code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False)
                entry = zipfile.ZipInfo(info.filename + "c", info.date_time)
                entry.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(entry, pyc)
