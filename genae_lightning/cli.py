"""The ``genae`` command: a table from command names to the functions in ``commands/``."""

import difflib
import os
import sys
from collections.abc import Callable

from genae_lightning import __version__
from genae_lightning.commands.configs import list_configs
from genae_lightning.commands.console import console, reporting_errors, split_verbose
from genae_lightning.commands.evaluate import evaluate
from genae_lightning.commands.export import export
from genae_lightning.commands.fit import SUBCOMMANDS, fit
from genae_lightning.commands.report import report
from genae_lightning.commands.sample import sample
from genae_lightning.commands.study import study
from genae_lightning.commands.train_features import train_features
from genae_lightning.commands.traverse import traverse
from genae_lightning.trust import split_trust, trusting

# Commands beside LightningCLI's fit/validate/test/predict: name -> function(argv).
COMMANDS: dict[str, Callable[[list[str]], object]] = {
    "sample": sample,
    "evaluate": evaluate,
    "export": export,
    "report": report,
    "train-features": train_features,
    "traverse": traverse,
    "configs": list_configs,
    "study": study,
}

LIGHTNING_HELP = {
    "fit": "train a method (LightningCLI; --config, --model, --data, --trainer.*)",
    "validate": "validate a checkpoint (LightningCLI)",
    "test": "test a checkpoint (LightningCLI)",
    "predict": "predict with a checkpoint (LightningCLI)",
}


def usage() -> str:
    """``genae --help``: every command with its one-line description."""
    lines = [f"usage: genae [-h] [--version] {{{','.join([*SUBCOMMANDS, *COMMANDS])}}} ...", "",
             "Generative autoencoders with PyTorch Lightning.", "", "commands:"]
    described = {**LIGHTNING_HELP,
                 **{name: (f.__doc__ or "").split(":", 1)[-1].strip().split("\n")[0]
                    for name, f in COMMANDS.items()}}
    width = max(map(len, described))
    lines += [f"  {name:<{width}}  {text}" for name, text in described.items()]
    lines += ["", "`genae <command> --help` describes a command's arguments.",
              "On any command: --trust module.Class lets files name that class of yours;",
              "--verbose (or GENAE_VERBOSE=1) prints the libraries' notices and full tracebacks."]
    return "\n".join(lines)


def unknown_command(name: str) -> str:
    """What to say when ``genae <name>`` names no command: every command, close matches first."""
    commands = [*SUBCOMMANDS, *COMMANDS]
    close = difflib.get_close_matches(name, commands, n=3, cutoff=0.6)
    return (usage().splitlines()[0] + f"\ngenae: error: unknown command {name!r}"
            + (f"; did you mean {' or '.join(close)}?" if close else "")
            + f"\nthe commands are: {', '.join(commands)} (`genae --help` describes them)")


def main(args: list[str] | None = None) -> None:
    """Entry point of ``genae``: ``genae fit|validate|test ...``, ``genae sample ...``, ...

    ``--trust module.Class`` (any command, repeatable) lets files name that class of yours;
    ``--verbose`` (any command) or ``GENAE_VERBOSE=1`` prints the libraries' notices and the
    traceback of a user error (:mod:`~genae_lightning.commands.console`). Called from Python
    with ``args``, errors are raised as they are, for the caller to catch.
    """
    argv, classes = split_trust(sys.argv[1:] if args is None else list(args))
    argv, verbose = split_verbose(argv)
    with trusting(classes), console(verbose), reporting_errors(verbose or args is not None):
        run(argv)


def run(argv: list[str]) -> None:
    """Run the command of ``argv`` (without its ``--trust`` options)."""
    if argv[:1] in (["-h"], ["--help"]) or not argv:
        print(usage())
        return
    if argv[:1] == ["--version"]:
        print(f"genae-lightning {__version__}")
        return
    if argv[0] in COMMANDS:
        try:
            COMMANDS[argv[0]](argv[1:])
        except BrokenPipeError:  # output piped into a reader that stopped early (`| head`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if argv[0] not in SUBCOMMANDS and not argv[0].startswith("-"):  # `-c CONFIG fit` is fit's
        print(unknown_command(argv[0]), file=sys.stderr)
        raise SystemExit(2)
    fit(argv)


if __name__ == "__main__":
    main()
