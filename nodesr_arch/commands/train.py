"""``nodesr train -opt X.yml`` (or ``python -m nodesr_arch.train -opt X.yml``, the alias): BasicSR's training
pipeline with NODE-SR registered, ``root_path`` = the current directory.

BasicSR's flags work as they do in ``basicsr/train.py``: ``--auto_resume``, ``--debug``,
``--launcher {none,pytorch,slurm}``, ``--force_yml key:sub=value``, ``--local_rank`` (or
``--local-rank``). The options are checked before anything is written (option files are read with a safe
YAML loader), and the run holds a lock on its experiment name (:mod:`nodesr_arch.commands.experiment_lock`).
"""
import errno
import os
import sys

import nodesr_arch  # noqa: F401  (compat fixes, registries)
from nodesr_arch.commands.experiment_lock import LockError, lock_experiment
from nodesr_arch.compat import mark_checked, normalize_argv
from nodesr_arch.models.nodesr_model import NonFiniteLossError
from nodesr_arch.models.option_check import OptionError, read_options


def run(argv, is_train, prog):
    """Check the options of ``argv`` and run BasicSR's train or test pipeline in the current directory.

    Args:
        argv (list[str]): Command-line arguments (without the program name).
        is_train (bool): Train (True) or test (False).
        prog (str): Program name for messages.

    Returns:
        int: Exit status (0 on success; 2 for bad options; 1 when training stopped on non-finite losses or a full
        disk).
    """
    argv = normalize_argv(list(argv))
    sys.argv = [prog] + argv
    root_path = os.getcwd()
    try:
        if not {'-h', '--help'} & set(argv):  # BasicSR's parser prints the help
            opt = read_options(argv, is_train=is_train)
            if int(os.environ.get('RANK', '0')) == 0:
                lock_experiment(os.path.join(root_path, 'experiments' if is_train else 'results'), opt['name'])
            mark_checked(argv)
    except (OptionError, LockError) as e:
        print(f'{prog}: error: {e}', file=sys.stderr)
        return 2
    if is_train:
        from basicsr.train import train_pipeline
        try:
            train_pipeline(root_path)
        except NonFiniteLossError as e:
            print(f'{prog}: error: {e}', file=sys.stderr)
            return 1
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            print(f'{prog}: error: {e.strerror} (free some space, then continue with --auto_resume from the last '
                  'complete checkpoint)', file=sys.stderr)
            return 1
    else:
        from basicsr.test import test_pipeline
        test_pipeline(root_path)
    return 0


def main(argv=None):
    """Entry point of ``nodesr train``.

    Args:
        argv (list[str] | None): Arguments; default ``sys.argv[1:]``.
    """
    return run(sys.argv[1:] if argv is None else argv, is_train=True, prog='nodesr train')


if __name__ == '__main__':
    sys.exit(main())
