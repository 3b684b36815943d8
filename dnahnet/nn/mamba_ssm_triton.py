"""mamba_ssm's Triton kernels, importable also where its CUDA extensions were never built.

`pip install mamba-ssm` with `MAMBA_SKIP_CUDA_BUILD=TRUE` (no compiler, no matching wheel) installs
the Triton kernels this project uses (the SSD chunk scan) but not the Mamba-1 CUDA extension
`selective_scan_cuda`, and the package's `__init__` imports that extension unconditionally (seen
in mamba_ssm 2.3.2), so `import mamba_ssm.ops.triton...` fails. Where that is why it fails, the
package is registered here without running its `__init__` (its submodules load as usual), so the
Triton kernels load. Nothing of mamba_ssm that needs the missing extension becomes usable.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

PACKAGE = "mamba_ssm"
# The compiled extensions mamba_ssm's `__init__` may import; a failure naming another module is real.
CUDA_EXTENSIONS = ("selective_scan_cuda", "causal_conv1d_cuda", "causal_conv1d")

WITHOUT_INIT = "without the package __init__ (its CUDA extensions are not built)"
import_route: str = "not tried"  # how the last `load` found the package, for reports


def load(module: str) -> types.ModuleType | None:
    """Import `mamba_ssm.<module>` (e.g. "ops.triton.ssd_combined"); None when it cannot be used here."""
    global import_route
    name = f"{PACKAGE}.{module}"
    try:
        try:
            found = importlib.import_module(name)
        except ImportError as exc:
            if exc.name not in CUDA_EXTENSIONS or not _register_without_init():
                raise
            found = importlib.import_module(name)  # again, under the package registered without its __init__
    except Exception as exc:  # noqa: BLE001 - absent, or a broken install (e.g. a Triton mismatch): not usable
        import_route = f"unavailable ({type(exc).__name__}: {exc})"
        return None
    import_route = WITHOUT_INIT if getattr(sys.modules[PACKAGE], "_dnahnet_shell", False) else "package"
    return found


def _register_without_init() -> bool:
    """Put an empty `mamba_ssm` package (its real path, no `__init__` run) in sys.modules."""
    for key in [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + ".")]:
        del sys.modules[key]  # half-imported modules from the failed attempt
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return False
    shell = types.ModuleType(PACKAGE)
    shell.__path__ = list(spec.submodule_search_locations)
    shell.__spec__ = spec
    shell.__file__ = spec.origin
    shell._dnahnet_shell = True  # marks the package as registered here
    sys.modules[PACKAGE] = shell
    return True
