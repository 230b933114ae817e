"""Convert an official snapshot (.pkl) to this project's checkpoint format (.pt), once, so the pickle can be left
behind: the StyleInV release's stage-2 (pSp + G) or stage-3 (G, D, SI, SI_ema) snapshots, or any
stylegan2-ada-pytorch snapshot. Nothing from the pickle is executed (see training/checkpoint.py).

Example:
  python scripts/convert_release.py network-snapshot-025000.pkl styleinv-dfuf256.pt
The output holds the networks under this project's names (SI_ema -> motion_generator_ema, pSp -> encoder) and, as
metadata, the pickle's training_set_kwargs; it is written to a temporary file and renamed. It has no training state:
use it with --init, generate.py and calc_metrics.py (not --resume).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from training import checkpoint  # noqa: E402


@click.command(context_settings=dict(help_option_names=["-h", "--help"]))
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def main(source: Path, dest: Path):
    """Convert SOURCE (an official .pkl) to DEST (a styleinv checkpoint)."""
    if not source.is_file():
        raise click.ClickException(f"{source} does not exist")
    if dest.exists() and dest.resolve() == source.resolve():
        raise click.ClickException(f"{dest}: the output would overwrite the input (same file); choose another name")
    if not checkpoint.is_plain_pickle(source):
        raise click.ClickException(f"{source} is not a .pkl snapshot (not a plain pickle); a styleinv checkpoint "
                                   "needs no conversion")
    try:
        nets = checkpoint.load_networks(source)
        content = checkpoint.read_official_pickle(source)
    except (ValueError, KeyError) as e:
        raise click.ClickException(str(e).strip("'\"")) from None
    if not nets:
        raise click.ClickException(f"{source} holds no network this project can build")
    metadata = dict(converted_from=source.name, training_set_kwargs=content.get("training_set_kwargs"))
    checkpoint.save_checkpoint(dest, nets, metadata=metadata)
    for name, net in nets.items():
        click.echo(f"{name}: {type(net).__name__}")
    click.echo(f"Wrote {dest}")


if __name__ == "__main__":
    main()
