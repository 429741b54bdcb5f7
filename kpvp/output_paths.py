"""Names of the files kpvp writes from names it did not choose.

Class names read from disk (a folder data set's sub-folders) and input file names become file
names only through `safe_file_name`: one path component, no separator, no `..`, no control
character. `predict_outputs` plans every file a `kpvp.predict` call will write before anything
is computed, so that two inputs never write one file and no existing file is replaced unless
asked.
"""
from __future__ import annotations

import os
import re
import unicodedata

from kpvp import errors

# Characters that separate paths or are refused by some file systems (Windows).
_RESERVED = re.compile(r'[/\\:*?"<>|]')
MAX_NAME_LENGTH = 100


def safe_file_name(name, fallback: str = "unnamed") -> str:
    """`name` as one safe path component: reserved characters and control characters become
    `_`, runs of dots one dot, no leading dot or space (so never `.`, `..` or hidden)."""
    text = "".join("_" if unicodedata.category(c)[0] == "C" else c for c in str(name))
    text = _RESERVED.sub("_", text)
    for separator in filter(None, (os.sep, os.altsep)):  # an OS with another separator
        text = text.replace(separator, "_")
    text = re.sub(r"\.{2,}", ".", text).strip(" .")[:MAX_NAME_LENGTH].rstrip(" .")
    return text or fallback


def safe_file_names(names) -> list[str]:
    """`safe_file_name` of each name, made unique: a name that another one's already took gets
    its index appended (`a_b` and `a/b` -> `a_b`, `a_b-1`)."""
    out, taken = [], set()
    for index, name in enumerate(names):
        safe = safe_file_name(name)
        if safe.lower() in taken:  # case-insensitive file systems collide too
            safe = f"{safe}-{index}"
        taken.add(safe.lower())
        out.append(safe)
    return out


def input_stems(paths) -> list[str]:
    """Output stems of input files: the safe file name without extension, with the extension
    kept (`a_png`, `a_jpg`) where two inputs share a stem."""
    stems = [safe_file_name(os.path.splitext(os.path.basename(p))[0]) for p in paths]
    lowered = [s.lower() for s in stems]
    return [safe_file_name(os.path.basename(p).replace(".", "_")) if lowered.count(s.lower()) > 1
            else s for p, s in zip(paths, stems)]


def predict_outputs(inputs, output: str, num_samples: int, batch: bool, fmt: str = "gif",
                    overwrite: bool = False) -> dict[str, list[str]]:
    """`{input path: [output path per sample]}` for `kpvp.predict`.

    Batch mode (`output` a folder): `<stem>[_<sample>].<fmt>` per input (see `input_stems`);
    one input: `output` itself, or `<root>_<sample><ext>` for several samples.

    Raises:
      InvalidInput: two outputs are the same file (names differing only in case count), or an
        output is an input.
      OutputExists: an output exists already and not `overwrite`.
    """
    plan = {}
    for path, stem in zip(inputs, input_stems(inputs)):
        names = []
        for sample in range(num_samples):
            if batch:
                name = f"{stem}_{sample}" if num_samples > 1 else stem
                names.append(os.path.join(output, f"{name}.{fmt}"))
            elif num_samples == 1:
                names.append(output)
            else:
                root, ext = os.path.splitext(output)
                names.append(f"{root}_{sample}{ext}")
        plan[path] = names
    outputs = [p for names in plan.values() for p in names]
    keys = [_key(p) for p in outputs]
    clashes = [p for p, k in zip(outputs, keys) if keys.count(k) > 1]
    if clashes:
        raise errors.InvalidInput(f"two inputs would write the same output file {clashes[0]}; "
                                  "rename one of the inputs")
    input_keys = {_key(p) for p in inputs}
    overwritten = [p for p, k in zip(outputs, keys) if k in input_keys]
    if overwritten:
        raise errors.InvalidInput(f"the output {overwritten[0]} is an input; choose another "
                                  "--output")
    existing = [p for p in outputs if os.path.lexists(p)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise errors.OutputExists(f"{existing[0]} exists{more}; pass --overwrite to replace, "
                                  "or choose another --output")
    return plan


def _key(path: str) -> str:
    """One spelling per file (case-insensitive file systems included)."""
    return os.path.normcase(os.path.abspath(path)).lower()
