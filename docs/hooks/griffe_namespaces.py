"""Griffe extension: document modules inside namespace subpackages (folders without ``__init__.py``).

spikeprep's stage folders (``spikeprep/inputs/``, ``alignment/``, ``representations/``,
``report/``) are implicit namespace packages: Python imports ``spikeprep.inputs.dat`` fine, but
griffe only descends into folders holding an ``__init__.py``, so mkdocstrings could not find
``spikeprep.inputs.dat.SpikeStream``. When a package is loaded, this extension adds each such
folder as a module and visits the ``.py`` files in it. It does nothing for folders that have an
``__init__.py`` (should the stage folders get one, it becomes a no-op).
"""

from __future__ import annotations

from pathlib import Path

import griffe


class NamespaceSubpackages(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader, **kwargs) -> None:
        folder = Path(pkg.filepath).parent if Path(pkg.filepath).name == "__init__.py" else None
        if folder is not None:
            self._add_folders(pkg, folder, loader)

    def _add_folders(self, parent: griffe.Module, folder: Path, loader) -> None:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name.isidentifier()):
            if (sub / "__init__.py").exists():
                if sub.name in parent.members and isinstance(parent.members[sub.name], griffe.Module):
                    self._add_folders(parent.members[sub.name], sub, loader)
                continue
            if sub.name in parent.members or not any(sub.glob("*.py")):
                continue
            namespace = griffe.Module(sub.name, filepath=sub, parent=parent)
            parent.set_member(sub.name, namespace)
            for file in sorted(sub.glob("*.py")):
                module = griffe.visit(
                    file.stem, file, file.read_text(encoding="utf-8"), parent=namespace,
                    extensions=getattr(loader, "extensions", None),
                    docstring_parser=getattr(loader, "docstring_parser", None),
                    docstring_options=getattr(loader, "docstring_options", None),
                    lines_collection=getattr(loader, "lines_collection", None),
                    modules_collection=getattr(loader, "modules_collection", None))
                namespace.set_member(file.stem, module)
            self._add_folders(namespace, sub, loader)
