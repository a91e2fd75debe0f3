"""The files generated from the job's vocabulary and the page contract, for JavaScript to read.

``python -m shared.codegen`` writes them; tests/unit/test_vocabulary.py fails when one is not
current. Apart from both modules so that neither imports the other.
"""

import sys
from pathlib import Path

from shared import page_contract, vocabulary
from shared.settings import PROJECT_ROOT

VOCABULARY_JS = PROJECT_ROOT / "web" / "runtime" / "vocabulary.mjs"


def generated() -> dict[Path, str]:
    """Each generated file and what it must hold."""
    return {
        VOCABULARY_JS: vocabulary.javascript(),
        page_contract.SCHEMA_PATH: page_contract.schema_text(),
    }


def write() -> list[Path]:
    written = []
    for path, text in generated().items():
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    sys.exit(0)
