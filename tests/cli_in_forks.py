"""Run several ``atdata`` command lines, each in a process of its own, paying the imports once.

Run as a script: ``python tests/cli_in_forks.py`` with a JSON list of ``[argv, env]`` pairs on
stdin. The entry point the installed ``atdata`` script calls is looked up in the installed
package's metadata and imported here once, with the optional dependencies the commands use;
then each command runs in a forked child (its own logging setup, clients and exit), with
``env`` added to the environment, as the script would run it: an exception it lets out is
printed with its traceback, as the interpreter prints it. Children run one after the other and
write to this process's stdout and stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from importlib.metadata import entry_points

# imported by the commands under test (index providers, the CLI's output): loaded before forking
PRELOAD = ("redis", "redis.asyncio", "psycopg", "rich.console", "typer")


def _run_one(main: Callable[[], object], argv: list[str], env: dict[str, str]) -> int:
    os.environ.update(env)
    sys.argv = ["atdata", *argv]
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        return 1
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main() -> None:
    commands = json.load(sys.stdin)
    (script,) = entry_points(group="console_scripts", name="atdata")
    entry = script.load()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for argv, env in commands:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _run_one(entry, argv, env)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
