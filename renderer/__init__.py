"""dossier: specimen records of corporate roles, rendered as printable case-file PDFs."""

from importlib import import_module

__version__ = "0.1.0"

# The public API, imported on first use so that `dossier --help` stays fast.
_API = {
    "load_catalog": "records",
    "load_record": "records",
    "dump_record": "records",
    "Catalog": "records",
    "Entry": "records",
    "Record": "model",
    "slugify": "model",
    "import_file": "textimport",
    "import_text": "textimport",
    "to_text": "textimport",
    "load_config": "config",
    "Config": "config",
    "render_dossier": "render",
    "InvalidInput": "problems",
    "Problem": "problems",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
