"""``nodesr test -opt Y.yml`` (or ``python -m nodesr_arch.commands.test -opt Y.yml``): BasicSR's test pipeline with
NODE-SR registered, ``root_path`` = the current directory.

Writes the SR images (``val: save_img: true``) to ``results/<name>/visualization/<set>/`` and, with
``model_type: NODESRModel``, a metrics summary ``results/<name>/metrics.json`` and ``metrics.csv``.
The options are checked before anything is written.
"""
import sys

from nodesr_arch.commands.train import run


def main(argv=None):
    """Entry point of ``nodesr test``.

    Args:
        argv (list[str] | None): Arguments; default ``sys.argv[1:]``.
    """
    return run(sys.argv[1:] if argv is None else argv, is_train=False, prog='nodesr test')


if __name__ == '__main__':
    sys.exit(main())
