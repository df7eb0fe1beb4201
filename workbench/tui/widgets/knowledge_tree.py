"""A file and folder tree for the upload wizard that loads each folder when it is opened.

Textual's `DirectoryTree` keeps a loader worker alive for as long as it is
mounted; this tree lists a folder in a short thread worker when it is
expanded, so the app is idle when nothing is loading.
"""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from workbench.tui.safe import plain


class PathTree(Tree[Path]):
    """Folders (expandable) and files under `path`; hidden entries are left out, as ingestion does."""

    def __init__(self, path: Path, **kwargs: object) -> None:
        super().__init__(plain(str(path)), data=path, **kwargs)  # type: ignore[arg-type]
        self.path = path
        self._loaded: set[Path] = set()

    def on_mount(self) -> None:
        self.show_root = True
        self._load(self.root)

    def set_root(self, path: Path) -> None:
        """Show the tree of another folder."""
        self.path = path
        self._loaded.clear()
        self.reset(plain(str(path)), path)
        self._load(self.root)

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Path]) -> None:
        if event.node.tree is self:
            self._load(event.node)

    def _load(self, node: TreeNode[Path]) -> None:
        folder = node.data
        if folder is None or folder in self._loaded:
            return
        self._loaded.add(folder)
        tree_path = self.path

        def work() -> None:
            entries = _list(folder)
            self.app.call_from_thread(self._populate, node, entries, tree_path)

        self.run_worker(work, thread=True, group="path-tree", name=f"list {folder}")

    def _populate(self, node: TreeNode[Path], entries: list[tuple[Path, bool]], tree_path: Path) -> None:
        if tree_path != self.path:  # the root changed while this folder was being listed
            return
        node.remove_children()
        for path, is_dir in entries:
            node.add(plain(path.name + ("/" if is_dir else "")), data=path, allow_expand=is_dir)
        node.expand()


def _list(folder: Path) -> list[tuple[Path, bool]]:
    """The visible entries of `folder`, folders first, each with whether it is a folder."""
    entries: list[tuple[Path, bool]] = []
    try:
        with os.scandir(folder) as scan:
            for entry in scan:
                if entry.name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                entries.append((Path(entry.path), is_dir))
    except OSError:
        return []
    return sorted(entries, key=lambda e: (not e[1], e[0].name.lower()))
