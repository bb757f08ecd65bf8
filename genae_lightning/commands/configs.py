"""``genae configs``: list the bundled configs, or print the path of one."""

import argparse
from pathlib import Path

from genae_lightning.commands.config_files import available_configs, config_dir, resolve_config


def list_configs(argv: list[str]) -> dict[str, Path]:
    """``genae configs``: list the bundled configs, or print the path of one (``--path``)."""
    parser = argparse.ArgumentParser(prog="genae configs", description=list_configs.__doc__)
    parser.add_argument("--path", metavar="NAME",
                        help="print the file of this config (e.g. for `wandb sweep`)")
    args = parser.parse_args(argv)
    if args.path is not None:
        try:
            print(resolve_config(args.path))
        except FileNotFoundError as err:
            parser.exit(2, f"genae configs: error: {err}\n")
        return {args.path: resolve_config(args.path)}
    configs = available_configs()
    width = max(map(len, configs))
    for name, path in configs.items():
        print(f"{name:<{width}}  {describe(path)}")
    print(f"\n{len(configs)} configs in {config_dir()}; use one with "
          "`genae fit --config <name>`, or copy it and pass the copy's path.")
    return configs


def describe(path: Path) -> str:
    """The first sentence of a config's opening comment, without the leading ``<name>:``."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
        if words[-1].endswith("."):
            break
    text = " ".join(words).removeprefix(f"{path.stem}:").strip()
    return text if len(text) <= 160 else text[:157].rsplit(" ", 1)[0] + " ..."
