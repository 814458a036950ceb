"""The command line every experiment shares: a preset, `key=value` overrides, one-line errors, a log.

    python -m experiments.toy2d --preset demo train.steps=2000 model_options.nsf.num_bins=16
    python -m experiments.toy2d --models nsf,maf --datasets moons      # shorthand flags
    python -m experiments.toy2d --show                                  # print the resolved config

- Any field of the preset can be overridden (`gen_jax.evaluation.config.resolve`): an unknown key or
  a value of the wrong type is an error naming the key and the valid choices.
- The resolved config is printed at the start and written to <out>/config.yaml; every run directory
  holds its own config.json (`gen_jax.evaluation.runs`). Runs are reused when their config is the
  same (so running a target twice reuses the first), `--fresh` retrains.
- Everything printed also goes to <out>/<experiment>.log. XLA's compiled programs are cached under
  results/.jax_cache (JAX's persistent compilation cache), so a rerun does not compile again.
- A user's mistake (a bad flag value, an unknown model or key, a bad data file) is one line on stderr
  naming the problem and the fix, with exit status 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from gen_jax.core import UserError
from gen_jax.evaluation.config import resolve, to_yaml


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we print one line and exit 2
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


class _Tee:
    """Writes to a stream and to a log file (lines only: a terminal bar's carriage returns are dropped)."""

    def __init__(self, stream, log):
        self.stream, self.log, self.buffer = stream, log, ""

    def write(self, text):
        self.stream.write(text)
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            if "\r" not in line:
                self.log.write(line + "\n")
        self.log.flush()
        return len(text)

    def flush(self):
        self.stream.flush()

    def isatty(self):
        return self.stream.isatty()

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def tee_output(path: Path):
    """Copy stdout and stderr into `path` (appending) for the duration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        old = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = old


def _compilation_cache(directory: str = "results/.jax_cache") -> None:
    """Persist compiled programs under `directory`, unless a cache directory is already configured
    (JAX_COMPILATION_CACHE_DIR, or the test suite's shared one): that one is kept."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    path = Path(directory).resolve()  # absolute: a later chdir must not move the cache
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def user_errors():
    """The exception types reported as one line (a user can fix them)."""
    return (UserError, ValueError, FileNotFoundError, FileExistsError)


def run_cli(
    name: str,
    presets: dict,
    run: Callable,
    argv=None,
    default_preset: str | None = None,
    shorthands: dict[str, tuple[str, str]] | None = None,
    doc: str | None = None,
) -> None:
    """Parse the command line, resolve the config, and call `run(cfg, fresh=...)` (see the module doc).

    shorthands: flag -> (config key, "list" | "value"), e.g. {"--models": ("models", "list")}.
    """
    parser = _OneLineParser(
        prog=f"python -m experiments.{name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", default=default_preset or next(iter(presets)), help=" | ".join(presets))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of any config field")
    parser.add_argument(
        "--fresh", action="store_true", help="retrain even when a finished run of this config exists"
    )
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)  # reuse is the default now
    parser.add_argument("--show", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    for flag, (key, _) in (shorthands or {}).items():
        parser.add_argument(flag, dest=f"short_{key.replace('.', '__')}", help=f"shorthand for {key}=...")
    a = parser.parse_args(argv)
    try:
        if a.preset not in presets:
            raise UserError(f"unknown preset {a.preset!r}; choose one of {', '.join(presets)}")
        overrides = list(a.overrides)
        for key, form in (shorthands or {}).values():
            value = getattr(a, f"short_{key.replace('.', '__')}")
            if value is not None:
                overrides.append(f"{key}=[{value}]" if form == "list" else f"{key}={value}")
        cfg = resolve(presets[a.preset], overrides)
        text = to_yaml(cfg)
        if a.show:
            print(text)
            return
        _compilation_cache()
        out = Path(getattr(cfg, "out", f"results/{name}"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(text)
        with tee_output(out / f"{name}.log"):
            print(
                f"{name}: preset {a.preset!r}, overrides {overrides or 'none'}; resolved config:\n{text}",
                flush=True,
            )
            run(cfg, fresh=a.fresh)
    except user_errors() as e:
        if a.debug:
            raise
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
