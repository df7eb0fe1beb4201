"""Entry point of the offline executable (`make dist`): the `workbench` CLI.

`run_python` starts `sys.executable -I -c CODE`; in the bundle `sys.executable`
is this program, so that one form runs the snippet with the bundled
interpreter instead of parsing it as Workbench arguments.
"""

from __future__ import annotations

import sys


def _run_snippet(code: str, args: list[str]) -> None:
    sys.argv = ["-c", *args]
    exec(compile(code, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1:3] == ["-I", "-c"]:
        _run_snippet(sys.argv[3], sys.argv[4:])
        raise SystemExit(0)
    from workbench.cli import main

    raise SystemExit(main())
