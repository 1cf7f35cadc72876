"""Write a benchmark's table into benchmarks/RESULTS.md with how it was made.

Every benchmark script (and every example whose figures RESULTS.md or the
README quote) takes ``--write-results [FILE]``. The section it writes starts
with the command that produced it, the date, the machine (``lscpu`` model
name and SIMD flags, core count, load average) and the library versions,
and sits between two HTML comments naming that command::

    <!-- results: python benchmarks/accuracy.py -->
    ...
    <!-- end results -->

Running the same command again replaces its section in place (so RESULTS.md
holds one copy of each table, the latest); a new command appends a section.
"""

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
_END = "<!-- end results -->"
# The CPU flags that decide how fast the networks run (vector units).
_SIMD_PREFIXES = ("sse4", "avx", "fma", "f16c", "amx", "vnni", "bf16")
# The load when the benchmark started (it imports this module first): a
# timing is only trustworthy when the machine was quiet at both ends.
_LOAD_AT_START = os.getloadavg()
# Options that say where to write, not what was measured.
_OUTPUT_OPTIONS = ("--write-results", "--json")


def add_argument(parser):
    """Add ``--write-results [FILE]`` (default file: benchmarks/RESULTS.md)."""
    parser.add_argument(
        "--write-results",
        nargs="?",
        const=str(RESULTS),
        default=None,
        metavar="FILE",
        help="write the table into FILE (default benchmarks/RESULTS.md), replacing the section of the same command",
    )


def command(argv=None):
    """The command that ran, from the repository root, without output options."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    words, skip_value = [], False
    for word in argv[1:]:
        if skip_value:
            skip_value = False
            if not word.startswith("--"):
                continue
        name = word.split("=", 1)[0]
        if name in _OUTPUT_OPTIONS:
            skip_value = "=" not in word
            continue
        words.append(word)
    return shlex.join(["python", script.as_posix(), *words])


def _lscpu():
    try:
        out = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
    except OSError:
        return {}
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def machine():
    """One line: CPU model, cores, SIMD flags, GPU, load average at start and end."""
    cpu = _lscpu()
    name = cpu.get("Model name") or platform.processor() or "unknown CPU"
    flags = [f for f in cpu.get("Flags", "").split() if f.startswith(_SIMD_PREFIXES)]
    start, end = (", ".join(f"{x:.1f}" for x in load) for load in (_LOAD_AT_START, os.getloadavg()))
    gpu = "no GPU"
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        gpu = sys.modules["torch"].cuda.get_device_name(0)
    return (
        f"{os.cpu_count()}-core CPU, `lscpu` model name: {name}; SIMD flags: "
        f"{' '.join(flags) or 'none listed'}; {gpu}; load average {start} at the start, {end} at the end"
    )


def versions():
    """Versions of the libraries that decide the figures, those imported."""
    names = ("sktransfer", "torch", "onnxruntime", "sklearn", "skorch", "PIL")
    found = []
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            found.append(f"{name} {getattr(module, '__version__', '?')}")
    return ", ".join(found)


def section(title, body, *, cmd=None, notes=None):
    """The Markdown of one section: title, provenance lines, body."""
    cmd = cmd or command()
    lines = [
        f"<!-- results: {cmd} -->",
        f"## {title}",
        "",
        f"    {cmd} --write-results",
        "",
        f"Written by the command above on {datetime.date.today().isoformat()}.  ",
        f"Machine: {machine()}.  ",
        f"Versions: {versions()}.",
    ]
    if notes:
        lines += ["", notes]
    lines += ["", body.rstrip(), _END, ""]
    return "\n".join(lines)


def replace_section(text, cmd, new):
    """`text` with the section of `cmd` replaced by `new`, or `new` appended."""
    start_marker = f"<!-- results: {cmd} -->"
    start = text.find(start_marker)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + new
    end = text.find(_END, start)
    end = len(text) if end < 0 else end + len(_END)
    return text[:start] + new.rstrip("\n") + text[end:]


def write(path, title, body, *, notes=None):
    """Put the section into `path` atomically and say so; no-op when path is None."""
    if path is None:
        return
    cmd = command()
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    new = replace_section(old, cmd, section(title, body, cmd=cmd, notes=notes))
    # A temporary file and a rename: an interrupted write never truncates RESULTS.md.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".md")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(new)
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would make RESULTS.md private
    os.replace(temporary, path)
    print(f"wrote the section of `{cmd}` to {path}")


def start_run():
    """Print the core count and the load average for the run's log; return the start (``time.perf_counter``)."""
    load = os.getloadavg()
    print(f"{os.cpu_count()}-core CPU; load average at start {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}", flush=True)
    return time.perf_counter()


def finish_run(args, title, table, started, results):
    """Print ``table``, the wall time since ``started`` and the load at the end; write ``--json`` and the section.

    ``results`` goes to ``args.json`` as JSON, tuple keys joined by " / ".
    """
    print()
    print(table)
    print(
        f"\ntotal wall {time.perf_counter() - started:.0f} s; load average at end "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    if args.json:
        keyed = {" / ".join(map(str, key)) if isinstance(key, tuple) else key: value for key, value in results.items()}
        Path(args.json).write_text(json.dumps(keyed, indent=1, default=str))
    write(args.write_results, title, table)
