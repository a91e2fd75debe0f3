"""Run inside Pyodide by precompile.mjs: bytecode for the stdlib zip and site-packages."""

import compileall
import glob
import importlib.util
import os
import py_compile
import shutil
import zipfile
from importlib._bootstrap_external import _code_to_hash_pyc

STDLIB_ZIP = "/lib/python314.zip"
# Parts of the plotly wheel only Jupyter uses (15 MB of JavaScript).
UNUSED = ["plotly/labextension", "plotly/package_data/widgetbundle.js", "plotly-*.data"]


def precompile(site, stdlib_out):
    for pattern in UNUSED:
        for path in glob.glob(os.path.join(site, pattern)):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    compileall.compile_dir(site, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
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
